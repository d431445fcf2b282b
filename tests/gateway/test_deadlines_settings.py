"""Deadline settings on both stores: a deployment's own policy file is used for `due`;
a broken one stops start-up; the new settings refuse bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import cli
from gateway.settings import Settings, SettingsError
from tests.support.messages import message_row, record_consent, send_new

OWN_POLICY = """
version = 1
[rules.district.sav.transfer_to_sav]
kind = "business_days"
n = 2
at = "15:00"
"""


@pytest.mark.asyncio
async def test_a_deployments_own_policy_sets_due(start, tmp_path: Path) -> None:
    path = tmp_path / "deadlines.toml"
    path.write_text(OWN_POLICY, encoding="utf-8")
    gw = await start(deadline_policy=path)
    consent = await record_consent(gw)  # so-nordost (district) → sav, transfer_to_sav
    header, _ = await send_new(gw, consent["consent_id"])
    row = await message_row(gw, header.message_id)
    assert row is not None
    assert row.due is not None  # the packaged default has no rule for this flow
    assert row.due > row.accepted_at


def test_a_broken_policy_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\n[rules.district.sav.transfer_to_sav]\nkind = "weeks"\n')
    monkeypatch.setenv("STAFETT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STAFETT_DEADLINE_POLICY", str(bad))
    assert cli.main(["serve"]) == 2  # before listening: nothing was accepted meanwhile
    assert "kind" in capsys.readouterr().err


def test_deadline_settings_from_env_and_their_bounds() -> None:
    settings = Settings.load(
        None,
        {
            "STAFETT_CONSENT_REMINDER_DAYS": "30",
            "STAFETT_ESCALATION_INTERVAL_S": "0",
            "STAFETT_DEADLINE_POLICY": "/etc/stafett/deadlines.toml",
        },
    )
    assert settings.consent_reminder_days == 30
    assert settings.escalation_interval_s == 0  # disables the job
    assert settings.deadline_policy == Path("/etc/stafett/deadlines.toml")
    assert Settings().deadline_policy is None  # the packaged policy
    assert Settings().consent_reminder_days == 14
    with pytest.raises(SettingsError):
        Settings(consent_reminder_days=-1)

"""The sender's view through the CLI: due times, escalation, signed rejections, recall,
and a readable ``watch`` line for every kind of event the gateway emits."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from clients.cli.render import when
from clients.cli.texts import TEXTS
from gateway.appkeys import DIRECTORY, SESSIONMAKER
from gateway.jobs.deadlines import (
    CONSENT_ENDING,
    OVERDUE_TO_RECIPIENT,
    OVERDUE_TO_SENDER,
    escalate_overdue,
    remind_consents_ending,
)
from keys.domain.calendar import BusinessCalendar, unix
from keys.domain.lifecycle import MessageState
from tests.support.cli import Cli
from tests.support.paths import REPO

DAY = 86_400
GATEWAY = REPO / "gateway"
# sav -> district, forward_report_of_concern: due at the end of the next business day
# (gateway/deadlines.toml); the consent's other flows have no deadline.
CATEGORY, PURPOSE = "report_of_concern", "forward_report_of_concern"
WRONG_DISTRICT_SV = "Fel stadsområde (annan tillhörighet)"
WRONG_DISTRICT_EN = "Wrong district (the person belongs elsewhere)"


async def _send(cli: Cli, text: str) -> dict[str, Any]:
    sent: dict[str, Any] = (await cli.send(text=text, category=CATEGORY, purpose=PURPOSE)).json()
    return sent


async def _reject(cli: Cli, tmp_path: Path, message_id: str, reason: str) -> None:
    await cli.run("nora", "open", message_id, "--out", str(tmp_path / "opened"))
    await cli.run("nora", "ack", message_id, "--reject", reason)


async def _status(cli: Cli, *args: str) -> list[dict[str, Any]]:
    answer = (await cli.run("sara", "--json", "status", *args)).json()
    messages: list[dict[str, Any]] = answer["messages"]
    return messages


@pytest.mark.asyncio
async def test_status_shows_due_escalation_and_the_signed_rejection_reason(
    cli: Cli, tmp_path: Path
) -> None:
    await cli.record_consent(category=CATEGORY, purpose=PURPOSE)

    # The gateway's due time comes back from send (SendResult.due) and status.
    rejected = await _send(cli, "Anmälan, fel stadsområde")
    expected_due = unix(BusinessCalendar().add_business_days(rejected["accepted_at"], 1))
    assert rejected["due"] == expected_due
    await _reject(cli, tmp_path, rejected["message_id"], "wrong_district")

    pending = await _send(cli, "Anmälan som ingen kvitterar")
    escalated_at = pending["due"] + 1
    sm, directory = cli.gw.app[SESSIONMAKER], cli.gw.app[DIRECTORY].directory
    assert await escalate_overdue(sm, directory, now=escalated_at) == 1

    by_id = {m["message_id"]: m for m in await _status(cli)}
    r, p = by_id[rejected["message_id"]], by_id[pending["message_id"]]
    assert r["state"] == "rejected"
    assert r["due"] == expected_due
    assert r["escalated_at"] is None
    assert (r["reason"], r["reason_verified"]) == ("wrong_district", True)
    assert r["reason_label"] == WRONG_DISTRICT_SV
    assert r["receipt"]["verified"] is True
    assert r["receipt"]["accepted"] is False
    assert r["receipt"]["recipient"] == "so-nordost/nora/1"
    assert (p["state"], p["escalated_at"], p["reason"]) == ("accepted", escalated_at, None)
    assert p["receipt"] is None

    # One message by id answers the same.
    [single] = await _status(cli, rejected["message_id"])
    assert single["reason"] == "wrong_district"

    sv = (await cli.run("sara", "status")).out
    assert "SENAST" in sv
    assert "ESKALERAT" in sv
    assert f"avvisat av so-nordost/nora/1: {WRONG_DISTRICT_SV}" in sv
    assert when(expected_due) in sv
    assert when(escalated_at) in sv
    en = (await cli.run("sara", "--lang", "en", "status")).out
    assert "DUE" in en
    assert "ESCALATED" in en
    assert f"rejected by so-nordost/nora/1: {WRONG_DISTRICT_EN}" in en
    en_json = (await cli.run("sara", "--lang", "en", "--json", "status")).json()
    labels = {m["message_id"]: m["reason_label"] for m in en_json["messages"]}
    assert labels[rejected["message_id"]] == WRONG_DISTRICT_EN


@pytest.mark.asyncio
async def test_reject_needs_a_vocabulary_reason_and_an_open(cli: Cli, tmp_path: Path) -> None:
    await cli.record_consent()
    message_id = (await cli.send()).json()["message_id"]
    not_opened = await cli.run("nora", "ack", message_id, "--reject", "wrong_district", expect=1)
    assert "har inte öppnats" in not_opened.err
    await cli.run("nora", "open", message_id, "--out", str(tmp_path / "o"))
    unknown = await cli.run("nora", "ack", message_id, "--reject", "dont_like_it", expect=2)
    assert "'dont_like_it'" in unknown.err
    assert "wrong_district" in unknown.err  # the allowed codes are listed
    [still] = await _status(cli, message_id)
    assert still["state"] == "delivered"
    done = (await cli.run("nora", "--json", "ack", message_id, "--reject", "wrong_unit")).json()
    assert done["state"] == "rejected"
    [after] = await _status(cli, message_id)
    assert (after["state"], after["reason"], after["reason_verified"]) == (
        "rejected",
        "wrong_unit",
        True,
    )

    # A gateway (or someone with its database) claiming a handover that the signed
    # receipt says was rejected: the receipt wins, and the officer is warned.
    async with cli.gw.app[SESSIONMAKER].begin() as session:
        await session.execute(
            text("UPDATE messages SET state = 'handed_over' WHERE id = :id"), {"id": message_id}
        )
    lied = await cli.run("sara", "--json", "status", message_id)
    assert "stämmer inte med det signerade kvittot" in lied.err
    [shown] = lied.json()["messages"]
    assert (shown["reason"], shown["reason_verified"]) == ("wrong_unit", True)
    assert shown["receipt"]["accepted"] is False


@pytest.mark.asyncio
async def test_recall_before_handover_and_not_after(cli: Cli, tmp_path: Path) -> None:
    await cli.record_consent()
    message_id = (await cli.send()).json()["message_id"]
    recalled = (await cli.run("sara", "--json", "recall", message_id)).json()
    assert recalled == {"message_id": message_id, "state": "recalled"}
    assert (await cli.run("nora", "--json", "inbox")).json()["messages"] == []
    [status] = await _status(cli, message_id)
    assert status["state"] == "recalled"
    again = await cli.run("sara", "recall", message_id, expect=1)
    assert "message_state_conflict" in again.err

    handed = (await cli.send()).json()["message_id"]
    await cli.run("nora", "open", handed, "--out", str(tmp_path / "o"))
    await cli.run("nora", "ack", handed)
    late = await cli.run("sara", "--lang", "en", "recall", handed, expect=1)
    assert "message_state_conflict" in late.err
    [kept] = await _status(cli, handed)
    assert kept["state"] == "handed_over"


async def _watch(cli: Cli, who: str, count: int, *kinds: str, lang: str = "sv") -> list[str]:
    args = ["--lang", lang, "watch", "--after", "0", "--count", str(count), "--timeout", "15"]
    for kind in kinds:
        args += ["--kind", kind]
    outcome = await cli.run(who, *args)
    return [line for line in outcome.out.splitlines() if line.startswith("[")]


@pytest.mark.asyncio
async def test_watch_prints_a_readable_line_for_every_event_kind(cli: Cli, tmp_path: Path) -> None:
    await cli.record_consent(category=CATEGORY, purpose=PURPOSE)
    rejected = (await _send(cli, "a"))["message_id"]
    await _reject(cli, tmp_path, rejected, "wrong_district")
    overdue = await _send(cli, "b")
    sm, directory = cli.gw.app[SESSIONMAKER], cli.gw.app[DIRECTORY].directory
    assert await escalate_overdue(sm, directory, now=overdue["due"] + 1) == 1
    recalled = (await _send(cli, "c"))["message_id"]
    await cli.run("sara", "recall", recalled)
    reminded = await remind_consents_ending(
        sm, now=int(time.time()) + 88 * DAY, days_before=7, directory=directory
    )
    assert reminded == 1

    sender_kinds = ("outbox.rejected", "outbox.overdue", "outbox.recalled", "consent.ending")
    sv = await _watch(cli, "sara", 4, *sender_kinds)
    assert len(sv) == 4, sv
    assert f"{rejected} avvisades ({WRONG_DISTRICT_SV})" in sv[0]
    assert f"{overdue['message_id']} till so-nordost är försenad" in sv[1]
    assert when(overdue["due"]) in sv[1]
    assert "du skickade det" in sv[1]
    assert f"{recalled} är återkallat" in sv[2]
    assert "Samtycke " in sv[3]
    assert "upphör" in sv[3]
    assert "om 2 dag(ar)" in sv[3]
    en = await _watch(cli, "sara", 4, *sender_kinds, lang="en")
    assert f"{rejected} was rejected ({WRONG_DISTRICT_EN})" in en[0]
    assert "is overdue" in en[1]
    assert "ends" in en[3]
    assert not any(line.split("] ", 1)[1].startswith("Event ") for line in sv + en)

    recipient = await _watch(
        cli, "nora", 3, "inbox.new", "inbox.overdue", "inbox.removed", lang="en"
    )
    assert any(
        f"{overdue['message_id']} from sav was not acknowledged in time" in line
        and "you are an addressed recipient" in line
        for line in recipient
    ), recipient
    assert all("Event " not in line for line in recipient)


def test_every_event_kind_the_gateway_emits_has_a_text_in_both_languages() -> None:
    """Kinds named literally in gateway/ plus the per-state ones (``outbox.<state>``):
    a new kind without a text fails here before an officer sees "Event x.y"."""
    source = "\n".join(p.read_text() for p in GATEWAY.rglob("*.py"))
    kinds = set(re.findall(r'kind="([a-z_]+\.[a-z_]+)"', source))
    kinds |= {OVERDUE_TO_SENDER, OVERDUE_TO_RECIPIENT, CONSENT_ENDING}
    assert 'kind=f"outbox.{new_state}"' in source  # the per-state emits still exist
    kinds |= {f"outbox.{s}" for s in MessageState if s != MessageState.ACCEPTED}
    assert {"inbox.new", "inbox.removed", "outbox.delivered"} <= kinds
    for language, texts in TEXTS.items():
        missing = sorted(k for k in kinds if f"event_{k}" not in texts)
        assert not missing, (language, missing)

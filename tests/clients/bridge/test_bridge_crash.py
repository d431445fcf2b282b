"""SIGKILL the bridge at each step of sending and of receiving, then restart it.

Every drop reaches the gateway exactly once, every handover is on disk exactly once,
and no receipt exists for a handover that is not durably in the inbox. The kill is
real (the bridge runs as its own process and kills itself at a named point in test
mode: ``clients.bridge.crash``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bridge_support import DOC, consent_to_sav, drop, handovers, messages_from, run_bridge

from clients.bridge.crash import POINTS
from tests.support.cli import Cli

pytestmark = pytest.mark.asyncio
SIGKILLED = -9


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "inbox").iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("point", [p for p in POINTS if p.startswith("send:")])
async def test_a_drop_is_sent_exactly_once_whatever_the_crash(
    cli: Cli, tmp_path: Path, point: str
) -> None:
    consent_id = await consent_to_sav(cli)
    root = tmp_path / "nordost"
    drop(root / "outbox", "arende", consent_id)

    crashed = await run_bridge(cli, "nora", root, "--no-receive", crash=point)
    assert crashed.status == SIGKILLED, crashed.err
    restarted = await run_bridge(cli, "nora", root, "--no-receive")
    assert restarted.status == 0, restarted.err

    sent = await messages_from(cli.gw, "so-nordost")
    assert len(sent) == 1
    (filed,) = list((root / "outbox" / "sent").iterdir())
    assert sorted(p.name for p in filed.iterdir()) == [
        "arende.pdf",
        "arende.stafett.json",
        "message.json",
    ]
    assert json.loads((filed / "message.json").read_text())["message_id"] == sent[0][0]
    assert not [p for p in (root / "outbox").iterdir() if p.is_file()]
    assert not list((root / "outbox" / "failed").iterdir())
    assert not list((root / "state" / "outgoing").glob("*.envelope"))

    # And it arrives once.
    receiver = tmp_path / "sav"
    assert (await run_bridge(cli, "sara", receiver, "--no-send")).status == 0
    (handover,) = handovers(receiver / "inbox")
    assert (handover / "documents" / "files" / "arende.pdf").read_bytes() == DOC


@pytest.mark.parametrize("point", [p for p in POINTS if p.startswith("recv:")])
async def test_a_handover_is_on_disk_exactly_once_and_receipted_only_after(
    cli: Cli, tmp_path: Path, point: str
) -> None:
    consent_id = await consent_to_sav(cli)
    sender, receiver = tmp_path / "nordost", tmp_path / "sav"
    drop(sender / "outbox", "arende", consent_id)
    assert (await run_bridge(cli, "nora", sender, "--no-receive")).status == 0

    crashed = await run_bridge(cli, "sara", receiver, "--no-send", crash=point)
    assert crashed.status == SIGKILLED, crashed.err
    ((message_id, state),) = await messages_from(cli.gw, "so-nordost")
    durable = handovers(receiver / "inbox")
    if state == "handed_over":
        # The receipt went out: the handover must already be in the inbox, complete.
        assert [p.name for p in durable] == [message_id]
        assert (durable[0] / "handover.json").exists()
    else:
        assert state in ("accepted", "delivered")

    restarted = await run_bridge(cli, "sara", receiver, "--no-send")
    assert restarted.status == 0, restarted.err
    ((_, state),) = await messages_from(cli.gw, "so-nordost")
    assert state == "handed_over"
    (handover,) = handovers(receiver / "inbox")
    assert handover.name == message_id
    assert (handover / "documents" / "files" / "arende.pdf").read_bytes() == DOC
    assert json.loads((handover / "handover.json").read_text())["message_id"] == message_id
    assert _leftovers(receiver) == []

    # A third run changes nothing (nothing left to take in, nothing written twice).
    assert (await run_bridge(cli, "sara", receiver, "--no-send")).status == 0
    assert [p.name for p in handovers(receiver / "inbox")] == [message_id]


async def test_a_handover_taken_away_before_the_receipt_is_not_written_again(
    cli: Cli, tmp_path: Path
) -> None:
    """The case system may collect a handover the moment it appears; the journal, not
    the inbox folder, says it was written."""
    consent_id = await consent_to_sav(cli)
    sender, receiver = tmp_path / "nordost", tmp_path / "sav"
    drop(sender / "outbox", "arende", consent_id)
    assert (await run_bridge(cli, "nora", sender, "--no-receive")).status == 0
    crashed = await run_bridge(cli, "sara", receiver, "--no-send", crash="recv:renamed")
    assert crashed.status == SIGKILLED
    (handover,) = handovers(receiver / "inbox")
    shutil.move(handover, tmp_path / "case-file")

    assert (await run_bridge(cli, "sara", receiver, "--no-send")).status == 0
    assert handovers(receiver / "inbox") == []
    assert [s for _, s in await messages_from(cli.gw, "so-nordost")] == ["handed_over"]

"""``stafett bridge`` end to end against a real gateway: folder → receipt → folder."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from bridge_support import (
    DOC,
    PNR,
    consent_to_sav,
    drop,
    handovers,
    messages_from,
    run_bridge,
    start_service,
    wait_for,
)

from tests.support.cli import Cli
from tests.support.gateway import tamper_stored_envelope

pytestmark = pytest.mark.asyncio


async def test_drop_travels_to_the_other_inbox_and_the_receipt_comes_back(
    cli: Cli, tmp_path: Path
) -> None:
    consent_id = await consent_to_sav(cli)
    sender, receiver = tmp_path / "nordost", tmp_path / "sav"
    drop(sender / "outbox", "arende-1", consent_id)

    sent = await run_bridge(cli, "nora", sender, "--no-receive")
    assert sent.status == 0, sent.err
    (filed,) = list((sender / "outbox" / "sent").iterdir())
    assert sorted(p.name for p in filed.iterdir()) == [
        "arende-1.pdf",
        "arende-1.stafett.json",
        "message.json",
    ]
    message_id = json.loads((filed / "message.json").read_text())["message_id"]
    assert [s for _, s in await messages_from(cli.gw, "so-nordost")] == ["accepted"]

    got = await run_bridge(cli, "sara", receiver, "--no-send")
    assert got.status == 0, got.err
    (handover,) = handovers(receiver / "inbox")
    assert handover.name == message_id
    assert (handover / "documents" / "files" / "arende-1.pdf").read_bytes() == DOC
    record = json.loads((handover / "handover.json").read_text())
    assert record["sender"]["kid"].startswith("so-nordost/nora/")
    assert record["consent_id"] == consent_id
    assert record["subject"]["personnummer"] == PNR
    assert record["case_reference"] == "SOC-2026-0042"
    assert record["category"]["code"] == "case_transfer"
    meta = json.loads((handover / "metadata.json").read_text())
    assert [d["as_declared"] for d in meta["documents"] if "as_declared" in d] == [True]
    assert "SOC-2026-0042" in (handover / "handover.html").read_text()
    assert [s for _, s in await messages_from(cli.gw, "so-nordost")] == ["handed_over"]

    again = await run_bridge(cli, "nora", sender)
    assert again.status == 0, again.err
    receipt = json.loads((filed / "receipt.json").read_text())
    assert receipt["verified"] is True
    assert receipt["accepted"] is True
    assert receipt["recipient"].startswith("sav/sara/")
    # Logs name ids and codes, never the person, the case or the file names.
    for output in (sent, got, again):
        text = output.out + output.err
        assert PNR not in text
        assert "SOC-2026" not in text
        assert "arende" not in text
    health = json.loads((sender / "state" / "health.json").read_text())
    assert health["status"] == "ok"
    assert health["pending_receipts"] == 0


async def test_bad_drops_fail_with_a_reason_or_wait_and_never_block(
    cli: Cli, tmp_path: Path
) -> None:
    consent_id = await consent_to_sav(cli)
    root = tmp_path / "nordost"
    outbox = root / "outbox"
    drop(outbox, "a-unknown-unit", consent_id, to={"unit": "no-such-unit"})
    drop(outbox, "b-no-consent", consent_id, consent_id=None)
    drop(outbox, "c-bad-pnr", consent_id, subject={"personnummer": "19121212-1213"})
    drop(outbox, "d-unknown-field", consent_id, priority="high")
    big = b"x" * (2 << 20)
    drop(outbox, "e-too-big", consent_id, content=big)
    drop(outbox, "f-unknown-consent", consent_id, consent_id="0f0f0f0f-0000-4000-8000-000000000000")
    half = drop(outbox, "g-half-written", consent_id, write_document=False)
    (outbox / "g-half-written.pdf").write_bytes(DOC[: len(DOC) // 2])  # still being copied
    (outbox / "h-sidecar-being-written.stafett.json").write_text('{"v": 1, "to": {')
    drop(outbox, "i-unreadable", consent_id, write_document=False)
    (outbox / "i-unreadable.pdf").symlink_to("i-unreadable.pdf")  # stat fails: ELOOP
    drop(outbox, "z-good", consent_id)

    run = await run_bridge(cli, "nora", root, "--no-receive", "--max-mib", "1")
    assert run.status == 0, run.err
    reasons = {
        p.name: json.loads((p / "reason.json").read_text()) for p in (outbox / "failed").iterdir()
    }
    assert {k: v["code"] for k, v in reasons.items()} == {
        "a-unknown-unit": "unknown_unit",
        "b-no-consent": "sidecar_invalid",
        "c-bad-pnr": "personnummer_invalid",
        "d-unknown-field": "sidecar_invalid",
        "e-too-big": "document_too_large",
        "f-unknown-consent": "gateway_refused",
        "i-unreadable": "unreadable",
    }
    assert reasons["i-unreadable"]["detail"] == "ELOOP"
    unreadable = (outbox / "failed" / "i-unreadable" / "reason.txt").read_text()
    assert "Bryggan kan inte läsa" in unreadable
    assert "consent_id" in reasons["b-no-consent"]["detail"]
    assert "priority" in reasons["d-unknown-field"]["detail"]
    text = (outbox / "failed" / "c-bad-pnr" / "reason.txt").read_text()
    assert "Personnumret är ogiltigt" in text
    assert "The personnummer is invalid" in text
    assert PNR[:8] not in text  # the reason names the rule, not the number
    assert sorted(p.name for p in (outbox / "failed" / "c-bad-pnr").iterdir()) == [
        "c-bad-pnr.pdf",
        "c-bad-pnr.stafett.json",
        "reason.json",
        "reason.txt",
    ]
    # The good drop went although it came after the bad ones; the incomplete ones wait.
    assert [p.name for p in (outbox / "sent").iterdir()] == ["z-good"]
    waiting = sorted(p.name for p in outbox.iterdir() if p.is_file() or p.is_symlink())
    assert waiting == [
        "g-half-written.pdf",
        "g-half-written.stafett.json",
        "h-sidecar-being-written.stafett.json",
    ]
    health = json.loads((root / "state" / "health.json").read_text())
    assert health["drop_errors"] == 0  # the unreadable drop is in failed/, not retried
    assert len(await messages_from(cli.gw, "so-nordost")) == 1

    # The copy finishes: the waiting drop goes in the next round.
    (outbox / "g-half-written.pdf").write_bytes(DOC)
    assert half["documents"][0]["size"] == len(DOC)
    run = await run_bridge(cli, "nora", root, "--no-receive", "--grace", "0")
    assert run.status == 0, run.err
    assert sorted(p.name for p in (outbox / "sent").iterdir()) == ["g-half-written", "z-good"]
    assert "h-sidecar-being-written" in {p.name for p in (outbox / "failed").iterdir()}
    assert len(await messages_from(cli.gw, "so-nordost")) == 2


async def test_a_message_that_cannot_be_verified_is_quarantined_without_receipt(
    cli: Cli, tmp_path: Path
) -> None:
    consent_id = await consent_to_sav(cli)
    sender, receiver = tmp_path / "nordost", tmp_path / "sav"
    drop(sender / "outbox", "q", consent_id)
    assert (await run_bridge(cli, "nora", sender, "--no-receive")).status == 0

    def flip(data: bytearray) -> None:
        data[-40] ^= 0x01  # one bit near the end: the sender's signature no longer verifies

    tamper_stored_envelope(cli.gw, flip)

    got = await run_bridge(cli, "sara", receiver, "--no-send")
    assert got.status == 0, got.err
    assert handovers(receiver / "inbox") == []
    assert not [p for p in (receiver / "inbox").iterdir()]  # no partial left either
    (folder,) = list((receiver / "quarantine").iterdir())
    reason = json.loads((folder / "reason.json").read_text())
    assert reason["message_id"] == folder.name
    assert reason["code"] == "envelope_signature_invalid"
    assert reason["tries"] == 1
    text = (folder / "reason.txt").read_text()
    assert "Orsak: Meddelandet till enheten kunde inte verifieras" in text
    assert "Reason: The message to the unit could not be verified" in text
    assert sorted(p.name for p in folder.iterdir()) == ["reason.json", "reason.txt"]
    # No receipt: the message is still open at the gateway (it expires by itself).
    assert [s for _, s in await messages_from(cli.gw, "so-nordost")] != ["handed_over"]
    health = json.loads((receiver / "state" / "health.json").read_text())
    assert health["quarantined"] == 1

    # The next round does not download it again (the next try is an hour away).
    again = await run_bridge(cli, "sara", receiver, "--no-send")
    assert again.status == 0, again.err
    assert "quarantined" not in again.err
    assert json.loads((folder / "reason.json").read_text())["tries"] == 1
    assert handovers(receiver / "inbox") == []


async def test_the_same_drop_again_is_a_duplicate_unless_it_has_its_own_drop_id(
    cli: Cli, tmp_path: Path
) -> None:
    consent_id = await consent_to_sav(cli)
    root = tmp_path / "nordost"
    drop(root / "outbox", "one", consent_id)
    assert (await run_bridge(cli, "nora", root, "--no-receive")).status == 0
    drop(root / "outbox", "one", consent_id)
    assert (await run_bridge(cli, "nora", root, "--no-receive")).status == 0
    (failed,) = list((root / "outbox" / "failed").iterdir())
    assert json.loads((failed / "reason.json").read_text())["code"] == "duplicate"
    assert len(await messages_from(cli.gw, "so-nordost")) == 1
    drop(root / "outbox", "two", consent_id, name="one.pdf", drop_id="second-copy")
    assert (await run_bridge(cli, "nora", root, "--no-receive")).status == 0
    assert len(await messages_from(cli.gw, "so-nordost")) == 2


async def test_as_a_service_it_reports_health_and_stops_on_sigterm(
    cli: Cli, tmp_path: Path
) -> None:
    consent_id = await consent_to_sav(cli)
    root = tmp_path / "nordost"
    proc = await start_service(cli, "nora", root)
    try:
        health = root / "state" / "health.json"
        await wait_for(health.exists)
        drop(root / "outbox", "later", consent_id)  # dropped while it runs
        await wait_for(lambda: (root / "outbox" / "sent" / "later").exists())
        assert json.loads(health.read_text())["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert len(await messages_from(cli.gw, "so-nordost")) == 1

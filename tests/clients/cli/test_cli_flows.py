"""The ``stafett`` CLI's happy paths against a real gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import PNR, Cli


@pytest.mark.asyncio
async def test_consent_send_open_ack_status_watch(cli: Cli, tmp_path: Path) -> None:
    consent_id = await cli.record_consent()
    listed = (await cli.run("sara", "--json", "consent", "list", "--pnr-stdin", stdin=PNR)).json()
    assert [(c["consent_id"], c["status"], c["verified"]) for c in listed["consents"]] == [
        (consent_id, "active", True)
    ]
    # The personnummer never lands in any file of the device's state directory.
    for path in cli.home("sara").rglob("*"):
        if path.is_file():
            assert b"121212" not in path.read_bytes()

    attachment = tmp_path / "akt.pdf"
    attachment.write_bytes(b"%PDF-1.4 not really\n" * 100)
    sent = (
        await cli.send("--officer", "nora", "--file", str(attachment), text="Överlämning")
    ).json()
    message_id = sent["message_id"]
    assert sent["consent_id"] == consent_id
    assert sent["recipients"] == ["so-nordost/nora/1"]

    table = await cli.run("nora", "inbox")
    assert "FRÅN" in table.out
    assert "sav/sara/1" in table.out
    assert message_id in table.out
    english = await cli.run("nora", "--lang", "en", "inbox")
    assert "FROM" in english.out
    assert "Application and necessary information" in english.out

    out_dir = tmp_path / "inkommet"
    opened = await cli.run("nora", "open", message_id, "--out", str(out_dir))
    assert "sav/sara/1" in opened.out
    assert consent_id in opened.out
    folder = out_dir / message_id
    assert (folder / "message.txt").read_text() == "Överlämning"
    assert (folder / "files" / "akt.pdf").read_bytes() == attachment.read_bytes()
    assert sorted(p.name for p in out_dir.iterdir()) == [message_id]  # no temp files left

    acked = (await cli.run("nora", "--json", "ack", message_id)).json()
    assert acked["state"] == "handed_over"
    status = (await cli.run("sara", "--json", "status")).json()["messages"]
    assert [(m["message_id"], m["state"]) for m in status] == [(message_id, "handed_over")]
    assert status[0]["receipt"]["verified"] is True
    assert status[0]["receipt"]["recipient"] == "so-nordost/nora/1"
    text = await cli.run("sara", "status")
    assert "överlämnat" in text.out
    assert "verifierat" in text.out

    watched = await cli.run(
        "sara",
        "--json",
        "watch",
        "--after",
        "0",
        "--kind",
        "outbox.handed_over",
        "--count",
        "1",
        "--timeout",
        "15",
    )
    events = [json.loads(line) for line in watched.out.splitlines()]
    assert [(e["kind"], e["message_id"]) for e in events] == [("outbox.handed_over", message_id)]
    # Opened here before: refused as a possible replay, before anything is fetched.
    again = await cli.run("nora", "open", message_id, "--out", str(tmp_path / "2"), expect=1)
    assert "REDAN ÖPPNAT" in again.err
    # Re-opened on purpose: content is gone from the gateway, nothing is written.
    again = await cli.run(
        "nora", "open", message_id, "--reopen", "--out", str(tmp_path / "2"), expect=1
    )
    assert "message_gone" in again.err
    assert not (tmp_path / "2" / message_id).exists()


@pytest.mark.asyncio
async def test_withdrawal_withdraws_pending_and_refuses_later_sends(cli: Cli) -> None:
    consent_id = await cli.record_consent()
    pending = (await cli.send()).json()["message_id"]
    answer = (
        await cli.run(
            "sara",
            "--json",
            "consent",
            "withdraw",
            consent_id,
            "--reason",
            "subject_withdrew",
            "--yes",
        )
    ).json()
    assert answer["messages_withdrawn"] == 1
    state = (await cli.run("sara", "--json", "status", pending)).json()["messages"][0]["state"]
    assert state == "withdrawn"
    assert (await cli.run("nora", "--json", "inbox")).json()["messages"] == []
    refused = await cli.send("--consent", consent_id, expect=1)
    assert "consent_withdrawn" in refused.err


@pytest.mark.asyncio
async def test_directory_warns_loudly_about_a_changed_key(cli: Cli) -> None:
    first = (await cli.run("sara", "--json", "directory")).json()
    assert {d["device"] for d in first["devices"]} >= {"so-nordost/nora", "so-nordost/bertil"}
    entry = cli.gw.builder.entry("revoke_device", {"device": "so-nordost/bertil", "reason": "lost"})
    await cli.gw.append(entry)
    second = await cli.run("sara", "directory")
    assert "SPÄRRADE" in second.err
    assert "so-nordost/bertil" in second.err
    assert f"Post {entry.seq} signerad av admin/root/1" in second.err
    quiet = await cli.run("sara", "directory")  # reported once, not on every run
    assert "VARNING" not in quiet.err

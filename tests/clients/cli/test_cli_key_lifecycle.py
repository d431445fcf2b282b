"""The key lifecycle through the shipped CLI against a real gateway (issue 8, 4–6):
revocation with exposure notices, receipts that stay proof, re-enrolment, rotation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from clients.cli.texts import TEXTS
from keys.crypto.keystore import load_keystore
from tests.support.cli import Cli, admin_workspace, run_keys
from tests.support.gateway import RunningGateway

NORA = "so-nordost/nora"


def _device_entry(gw: RunningGateway, request: Path, type_: str, **extra: Any) -> Any:
    req = json.loads(request.read_text())
    body = {
        "device": req["device"],
        "version": req["version"],
        "verify_key": req["verify_key"],
        "encryption_key": req["encryption_key"],
        **extra,
    }
    return gw.builder.entry(type_, body)


async def _revoke(gw: RunningGateway, *devices: str, reason: str = "lost") -> None:
    """Revocations signed by the harness admin (as a second gateway instance stores them)."""
    entries = (gw.builder.entry("revoke_device", {"device": d, "reason": reason}) for d in devices)
    await gw.append(*entries)


async def _status(cli: Cli) -> dict[str, dict[str, Any]]:
    answer = (await cli.run("sara", "--json", "status")).json()
    return {m["message_id"]: m for m in answer["messages"]}


@pytest.mark.asyncio
async def test_revoke_exposes_keeps_receipts_and_allows_re_enrolment(
    cli: Cli, gw: RunningGateway, tmp_path: Path
) -> None:
    # Nora is to be the unit's only device (the harness enrols two more).
    await _revoke(gw, "so-nordost/anna", "so-nordost/bertil", reason="other")
    await cli.record_consent()
    handed = (await cli.send(text="Överlämnat")).json()["message_id"]
    await cli.run("nora", "open", handed, "--out", str(tmp_path / "opened"))
    await cli.run("nora", "ack", handed)
    pending = (await cli.send(text="Väntar")).json()["message_id"]
    assert (await _status(cli))[handed]["receipt"]["key_since"] is None

    await _revoke(gw, NORA)

    # The sender is told at once: an event, the status field and the CLI line.
    watch = await cli.run("sara", "--json", "watch", "--kind", "outbox.exposed", "--count", "1")
    event = watch.json()
    assert event["message_id"] == pending
    assert event["data"]["exposed"] == [f"{NORA}/1"]
    assert (
        "EXPOSED"
        in (
            await cli.run(
                "sara",
                "--lang",
                "en",
                "watch",
                "--after",
                "0",
                "--kind",
                "outbox.exposed",
                "--count",
                "1",
            )
        ).out
    )
    status = await _status(cli)
    assert status[pending]["exposed_at"] is not None
    assert status[handed]["exposed_at"] is None
    text = (await cli.run("sara", "--lang", "sv", "status")).out
    assert "RÖJT" in text, text
    # The receipt signed before the revocation is still proof.
    assert status[handed]["receipt"]["verified"] is True
    assert status[handed]["receipt"]["key_since"] == "revoked"
    assert (
        TEXTS["en"]["receipt_verified_revoked"].split(":")[0]
        in (await cli.run("sara", "--lang", "en", "status", handed)).out
    )
    assert (
        "verifierad — nyckeln har senare spärrats"
        in (await cli.run("sara", "--lang", "sv", "status", handed)).out
    )

    # The revoked device is told it is revoked, not to try again later.
    refused = await cli.run("nora", "--lang", "en", "inbox", expect=1)
    assert "device_revoked" in refused.err
    assert "Do not retry" in refused.err

    # A unit without an active device has its own code, before anything is sealed.
    nobody = await cli.send(text="Till ingen", expect=1)
    assert "recipient_unit_no_device" in nobody.err

    # Re-enrolment keeps the name: the next key version.
    request = tmp_path / "nora2.request.json"
    trust = cli.root / "trust-root.json"
    await cli.run(
        "nora2",
        "init",
        "--device",
        NORA,
        "--gateway",
        str(gw.url),
        "--trust-root",
        str(trust),
        "--subject-key-file",
        str(cli.root / "city.key"),
        "--key-version",
        "2",
        "--request-out",
        str(request),
    )
    await gw.append(_device_entry(gw, request, "enrol_device", role="officer", contact=False))
    again = (await cli.send(text="Igen")).json()
    assert again["recipients"] == [f"{NORA}/2"]
    opened = await cli.run(
        "nora2", "--json", "open", again["message_id"], "--out", str(tmp_path / "again")
    )
    assert opened.status == 0


@pytest.mark.asyncio
async def test_the_units_other_device_sees_exposure_in_its_inbox(cli: Cli) -> None:
    await cli.record_consent()
    pending = (await cli.send(text="Väntar")).json()
    assert f"{NORA}/1" in pending["recipients"]
    assert "so-nordost/anna/1" in pending["recipients"]
    inbox = (await cli.run("nora", "--json", "inbox")).json()["messages"]
    assert [m["exposed_at"] for m in inbox] == [None]
    assert "RÖJT" not in (await cli.run("nora", "--lang", "sv", "inbox")).out

    # Anna's laptop (the harness's device) is lost; Nora, still active, is told.
    await _revoke(cli.gw, "so-nordost/anna")
    event = (
        await cli.run("nora", "--json", "watch", "--kind", "inbox.exposed", "--count", "1")
    ).json()
    assert event["message_id"] == pending["message_id"]
    assert event["data"]["exposed"] == ["so-nordost/anna/1"]
    inbox = (await cli.run("nora", "--json", "inbox")).json()["messages"]
    assert inbox[0]["exposed_at"] is not None
    for lang, word in (("sv", "RÖJT"), ("en", "EXPOSED")):
        shown = (await cli.run("nora", "--lang", lang, "inbox")).out
        assert f"{word}: {pending['message_id']}" in shown, shown


def _sign(keys_dir: Path, *argv: str) -> None:
    signed = run_keys(*argv, "--dir", str(keys_dir))
    assert signed.status == 0, signed.err
    hint = f"stafett admin push-directory --keys-dir {keys_dir.resolve()}"
    assert hint in signed.out or argv[:2] == ("device", "min-version"), signed.out


async def _sign_and_publish(cli: Cli, keys_dir: Path, *argv: str) -> None:
    """``stafett-keys ARGV``, then the publish command it prints, run as printed."""
    await asyncio.to_thread(_sign, keys_dir, *argv)
    gateway = ("--gateway", str(cli.gw.url))
    push = ("admin", "push-directory", "--keys-dir", str(keys_dir))
    assert (await cli.run("admin-home", *gateway, "--json", *push)).json()["pushed"] == 1


@pytest.mark.asyncio
async def test_rotation_with_the_shipped_tools(cli: Cli, tmp_path: Path) -> None:
    keys_dir = await admin_workspace(cli)
    await cli.record_consent()
    old = (await cli.send("--officer", "nora", text="Före bytet")).json()
    assert old["recipients"] == [f"{NORA}/1"]

    rotated = (await cli.run("nora", "--json", "device", "rotate")).json()
    assert rotated["kid"] == f"{NORA}/2"
    await _sign_and_publish(cli, keys_dir, "device", "rotate", rotated["request"])
    new = (await cli.send("--officer", "nora", text="Efter bytet")).json()
    assert new["recipients"] == [f"{NORA}/2"]
    out = tmp_path / "out"
    await cli.run("nora", "open", new["message_id"], "--out", str(out))
    await cli.run("nora", "open", old["message_id"], "--out", str(out))  # the old key opens
    for mid in (new["message_id"], old["message_id"]):
        await cli.run("nora", "ack", mid)

    await _sign_and_publish(cli, keys_dir, "device", "min-version", NORA, "2")
    await _sign_and_publish(cli, keys_dir, "key", "destroy", NORA, "1")
    await cli.run("nora", "directory")
    store = load_keystore(cli.home("nora") / "keys.crypto.keystore", "cli test passphrase")
    assert sorted(store.keypairs) == [2]
    status = await _status(cli)
    assert status[old["message_id"]]["receipt"]["verified"] is True
    assert status[new["message_id"]]["receipt"]["key_since"] is None

"""Bad input and failures: a clear message, a non-zero exit, nothing half-written."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.cli import PNR, Cli
from tests.support.gateway import tamper_stored_envelope


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.asyncio
async def test_invalid_personnummer_is_refused_without_echoing_it(cli: Cli) -> None:
    before = _files(cli.home("sara"))
    bad = "19121212-1213\n"
    result = await cli.run(
        "sara",
        "consent",
        "record",
        "--pnr-stdin",
        "--pair",
        "sav:so-nordost",
        "--category",
        "case_transfer",
        "--purpose",
        "transfer_to_district",
        "--days",
        "30",
        "--form",
        "oral",
        "--witness",
        "W",
        "--note",
        "N",
        stdin=bad,
        expect=1,
    )
    assert "kontrollsiffran" in result.err
    assert "1213" not in result.err + result.out
    assert _files(cli.home("sara")) == before
    listed = (await cli.run("sara", "--json", "consent", "list", "--pnr-stdin", stdin=PNR)).json()
    assert listed["consents"] == []


@pytest.mark.asyncio
async def test_unknown_unit_and_category_outside_vocabulary(cli: Cli) -> None:
    await cli.record_consent()
    body = cli.root / "t.txt"
    body.write_text("x")
    unit = await cli.run(
        "sara",
        "send",
        "--pnr-stdin",
        "--to",
        "so-nowhere",
        "--category",
        "case_transfer",
        "--purpose",
        "transfer_to_district",
        "--text-file",
        str(body),
        stdin=PNR,
        expect=2,
    )
    assert "so-nowhere" in unit.err
    assert "finns inte" in unit.err
    category = await cli.run(
        "sara",
        "--lang",
        "en",
        "send",
        "--pnr-stdin",
        "--to",
        "so-nordost",
        "--category",
        "gossip",
        "--purpose",
        "transfer_to_district",
        "--text-file",
        str(body),
        stdin=PNR,
        expect=2,
    )
    assert "'gossip' is not in the vocabulary" in category.err
    assert not (cli.home("sara") / "sent").exists()


@pytest.mark.asyncio
async def test_send_without_consent_is_refused_before_anything_leaves(cli: Cli) -> None:
    result = await cli.send(expect=1)
    assert "inget aktivt samtycke" in result.err
    assert not (cli.home("sara") / "sent").exists()
    assert (await cli.run("nora", "--json", "inbox")).json()["messages"] == []


@pytest.mark.asyncio
async def test_wrong_passphrase(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    keystore = cli.home("sara") / "keys.crypto.keystore"
    before = keystore.read_bytes()
    monkeypatch.setenv("STAFETT_PASSPHRASE", "not the passphrase")
    result = await cli.run("sara", "inbox", expect=1)
    assert "fel lösenfras" in result.err
    assert keystore.read_bytes() == before


@pytest.mark.asyncio
async def test_tampered_download_leaves_nothing(cli: Cli, tmp_path: Path) -> None:
    await cli.record_consent()
    message_id = (await cli.send(text="A" * 5000)).json()["message_id"]

    def flip(data: bytearray) -> None:
        data[len(data) // 2] ^= 0x01  # someone with write access to the gateway's disk

    tamper_stored_envelope(cli.gw, flip)
    out_dir = tmp_path / "out"
    result = await cli.run("nora", "open", message_id, "--out", str(out_dir), expect=1)
    assert "säkerhetskontrollen misslyckades" in result.err
    assert list(out_dir.iterdir()) == []
    assert not (cli.home("nora") / "opened").exists()
    ack = await cli.run("nora", "ack", message_id, expect=1)  # nothing verified to sign for
    assert "har inte öppnats" in ack.err


@pytest.mark.asyncio
async def test_gateway_down(cli: Cli) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = f"http://127.0.0.1:{port}"
    before = _files(cli.home("sara"))
    inbox = await cli.run("sara", "--gateway", down, "inbox", expect=3)
    assert "svarar inte" in inbox.err
    assert down in inbox.err
    body = cli.root / "t.txt"
    body.write_text("x")
    send = await cli.run(
        "sara",
        "--gateway",
        down,
        "send",
        "--pnr-stdin",
        "--to",
        "so-nordost",
        "--category",
        "case_transfer",
        "--purpose",
        "transfer_to_district",
        "--text-file",
        str(body),
        stdin=PNR,
        expect=3,
    )
    assert "inget skickades" in send.err
    assert _files(cli.home("sara")) == before  # no sent record, no spool or bundle left


@pytest.mark.asyncio
async def test_usage_errors_and_no_device(cli: Cli, tmp_path: Path) -> None:
    usage = await cli.run("sara", "send", "--to", "sav", expect=2)
    assert "felaktigt kommando" in usage.err
    nobody = await cli.run("nobody", "inbox", expect=1)
    assert "stafett init" in nobody.err


@pytest.mark.asyncio
async def test_message_ids_cannot_steer_paths(cli: Cli, tmp_path: Path) -> None:
    out_dir = tmp_path / "out" / "inbox"
    result = await cli.run("nora", "open", "../../etc", "--out", str(out_dir), expect=2)
    assert "not a message id" in result.err
    assert not (tmp_path / "out").exists()

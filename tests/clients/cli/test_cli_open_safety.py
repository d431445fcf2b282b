"""``stafett open`` and ``stafett directory`` on the recipient's device: replays of a
message opened before, leftovers of an interrupted open, and this device's own keys
(crypto-shredding of a destroyed version, notices), against a real gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keys.crypto.keypairs import DeviceKeyPair, KeyId
from keys.crypto.keystore import KdfCost, load_keystore, save_keystore
from tests.support.cli import Cli

PASSPHRASE = "cli test passphrase"  # conftest's STAFETT_PASSPHRASE


@pytest.mark.asyncio
async def test_a_second_open_is_flagged_and_a_reopen_warns(cli: Cli, tmp_path: Path) -> None:
    await cli.record_consent()
    message_id = (await cli.send(text="Hotbild")).json()["message_id"]
    await cli.run("nora", "open", message_id, "--out", str(tmp_path / "1"))
    record = json.loads((cli.home("nora") / "opened" / f"{message_id}.json").read_text())
    assert isinstance(record["opened_at"], int)

    replayed = await cli.run("nora", "open", message_id, "--out", str(tmp_path / "2"), expect=1)
    assert "REDAN ÖPPNAT" in replayed.err
    assert "--reopen" in replayed.err
    assert not (tmp_path / "2" / message_id).exists()

    reopened = await cli.run(
        "nora", "--json", "open", message_id, "--reopen", "--out", str(tmp_path / "2")
    )
    assert "ÖPPNAT IGEN" in reopened.err
    assert "inget nytt" in reopened.err
    assert reopened.json()["reopened"] is True
    assert (tmp_path / "2" / message_id / "message.txt").read_text() == "Hotbild"
    again = json.loads((cli.home("nora") / "opened" / f"{message_id}.json").read_text())
    assert again["opened_at"] == record["opened_at"]  # the first opening is kept
    assert "reopened_at" in again

    await cli.run("nora", "ack", message_id)
    acked = json.loads((cli.home("nora") / "opened" / f"{message_id}.json").read_text())
    assert acked["ack"] == "accepted"
    english = await cli.run(
        "nora", "--lang", "en", "open", message_id, "--out", str(tmp_path / "3"), expect=1
    )
    assert "ALREADY OPENED" in english.err


@pytest.mark.asyncio
async def test_leftovers_of_an_interrupted_open_are_swept(cli: Cli, tmp_path: Path) -> None:
    await cli.record_consent()
    message_id = (await cli.send(text="Akt")).json()["message_id"]
    out_dir = tmp_path / "inkommet"
    out_dir.mkdir()
    earlier = "0b7f3c9e-1d2a-4c5b-8e6f-9a0b1c2d3e4f"  # an earlier message's crash
    leftovers = [
        out_dir / f"..{earlier}.bundle.a1b2c3d4.part",  # decrypting the bundle
        out_dir / f".{earlier}.bundle",  # the decrypted bundle
    ]
    for path in leftovers:
        path.write_bytes(b"half a case")
    unpacking = out_dir / f".{earlier}.x_9k2m4q"  # unpacking it
    (unpacking / "files").mkdir(parents=True)
    (unpacking / "message.txt").write_bytes(b"half a case")
    others = [out_dir / ".profile.part", out_dir / "rapport.part", out_dir / f".{earlier}.bak"]
    for path in others:
        path.write_bytes(b"not ours")

    opened = await cli.run("nora", "open", message_id, "--out", str(out_dir))
    assert "3 ofullständiga filer" in opened.err
    assert not any(p.exists() for p in [*leftovers, unpacking])
    assert all(p.read_bytes() == b"not ours" for p in others)
    assert (out_dir / message_id / "message.txt").read_text() == "Akt"


@pytest.mark.asyncio
async def test_own_destroyed_key_is_shredded_and_reported(cli: Cli) -> None:
    await cli.run("sara", "directory")  # sara knows nora's key before the changes
    # nora's device rotated: its keystore holds version 2 next to version 1.
    path = cli.home("nora") / "keys.crypto.keystore"
    store = load_keystore(path, PASSPHRASE)
    v2 = DeviceKeyPair.generate(KeyId.parse("so-nordost/nora/2"))
    store.add_version(v2)
    save_keystore(path, store, PASSPHRASE, cost=KdfCost.TEST)
    b = cli.gw.builder
    await cli.gw.append(
        b.rotate(v2, min_encryption_version=1),
        b.entry(
            "set_min_encryption_version",
            {"device": "so-nordost/nora", "min_encryption_version": 2},
        ),
        b.entry("destroy_key", {"device": "so-nordost/nora", "version": 1}),
    )

    colleague = await cli.run("sara", "directory")
    assert "Lägsta krypteringsversion för so-nordost/nora höjdes: 1 -> 2" in colleague.err

    own = await cli.run("nora", "--lang", "en", "directory")
    assert "is now version 2 in the directory, and this device holds it" in own.err
    assert "minimum encryption version of this device (so-nordost/nora) is now 2" in own.err
    assert "old key version 1 (so-nordost/nora) is recorded as destroyed" in own.err
    assert sorted(load_keystore(path, PASSPHRASE).keypairs) == [2]  # shredded on disk
    quiet = await cli.run("nora", "directory")  # reported once
    assert "VARNING" not in quiet.err

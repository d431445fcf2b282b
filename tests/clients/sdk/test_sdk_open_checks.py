"""What the recipient checks before it trusts an opened envelope: the sender's directory
checkpoint, the signed expiry, replays of a message id, leftovers of an interrupted
open; and crypto-shredding of this device's destroyed keys on directory sync.

The gateway is real; where it has to misbehave, the test plays the attacker with the
means the attack needs (the admin key for a forked history, database access for an
envelope kept past its expiry).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from clients.errors import AlreadyOpened, EnvelopeExpired, EnvelopeReplayed
from clients.sdk import StafettClient, sealing
from clients.sdk.directory_sync import DirectorySync
from clients.sdk.open_checks import SenderDirectoryForked
from keys.crypto.keypairs import DeviceKeyPair, KeyId
from keys.errors import DirectoryForked
from keys.protocol.directory import Directory, make_entry
from keys.protocol.envelope import EnvelopeHeader
from tests.support.factories import ROOT_ADMIN
from tests.support.gateway import RunningGateway
from tests.support.sdk import (
    ANNA,
    BERTIL,
    BO,
    SUBJECT,
    client,
    device_keystore,
    message_args,
    record_consent,
    sql,
)


def _forked(gw: RunningGateway) -> Directory:
    """The gateway's log plus one admin-signed entry nobody else is shown: the history
    a forking gateway presents to the sender only."""
    forked: Directory = gw.builder.directory.copy()
    body = {"unit": "fork-only", "kind": "other", "name": "FORK"}
    forked.append(
        make_entry(forked, "create_unit", body, ROOT_ADMIN, gw.admin_key, gw.builder.clock + 5)
    )
    return forked


async def _send_seen_through(anna: StafettClient, consent_id: str, seen: Directory) -> str:
    """What anna's SDK sends when the directory it verified is ``seen`` (the fork): an
    honest, signed envelope whose header names that directory's checkpoint."""
    recipients = seen.encryption_keys("sav")
    now = int(time.time())
    header = EnvelopeHeader(
        message_id=str(uuid.uuid4()),
        sender=anna.kid,
        recipient_unit="sav",
        recipients=tuple(r.kid for r in recipients),
        consent_id=consent_id,
        subject_ref=SUBJECT,
        category="case_transfer",
        purpose="transfer_to_sav",
        created=now,
        expires=now + 3600,
        checkpoint_size=seen.size,
        checkpoint_head=seen.head.hex(),
        in_reply_to=None,
    )
    sealed = sealing.seal_to_file(
        header, b"hotbild", recipients, anna.keystore.current(), anna.spool_dir
    )
    try:
        resp = await anna.transport.upload(
            "PUT",
            f"/v1/messages/{header.message_id}",
            sealed.path,
            sealed.result.total_length,
            sealed.digest,
        )
    finally:
        sealing.remove(sealed.path)
    assert resp.status == 201
    return header.message_id


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """The output folder (tmp_path itself also holds the gateway's store)."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.mark.asyncio
async def test_sender_shown_another_history_is_refused(
    gateway: RunningGateway, inbox: Path
) -> None:
    forked = _forked(gateway)
    # What everyone else (bo) is shown at that position: another entry.
    await gateway.append(
        gateway.builder.entry("create_unit", {"unit": "real-only", "kind": "other", "name": "R"})
    )
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        message_id = await _send_seen_through(anna, consent_id, forked)
        with pytest.raises(SenderDirectoryForked) as caught:
            await bo.fetch(message_id, inbox / "case.txt")
        assert isinstance(caught.value, DirectoryForked)
        assert caught.value.code == "directory_forked"
    assert _listing(inbox) == []  # nothing decrypted, nothing left


@pytest.mark.asyncio
async def test_sender_shown_entries_hidden_from_the_recipient_is_refused(
    gateway: RunningGateway, inbox: Path
) -> None:
    # The sender verified one entry more than the gateway shows bo, even after bo syncs.
    forked = _forked(gateway)
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        message_id = await _send_seen_through(anna, consent_id, forked)
        with pytest.raises(SenderDirectoryForked, match="shows this device"):
            await bo.fetch(message_id, inbox / "case.txt")
    assert _listing(inbox) == []


@pytest.mark.asyncio
async def test_a_sender_on_an_older_head_of_the_same_history_is_fine(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        sent = await anna.send(**message_args(consent_id, body=b"x"))
        # The directory grew after the send: the sender's head is a prefix of bo's.
        await gateway.append(
            gateway.builder.entry("create_unit", {"unit": "later", "kind": "other", "name": "L"})
        )
        opened = await bo.fetch(sent.message_id, tmp_path / "case.txt")
        assert opened.header.checkpoint_size < (await bo.directory()).size


@pytest.mark.asyncio
async def test_an_envelope_served_after_its_expiry_is_refused(
    gateway: RunningGateway, inbox: Path
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        sent = await anna.send(**message_args(consent_id, expires_in_s=2))
        await asyncio.sleep(max(0.0, sent.expires - time.time()) + 0.05)
        # The attacker: a gateway that keeps (and serves) content past its expiry.
        await sql(
            gateway,
            "UPDATE messages SET expires = expires + 3600 WHERE id = :m",
            m=sent.message_id,
        )
        with pytest.raises(EnvelopeExpired) as caught:
            await bo.fetch(sent.message_id, inbox / "case.txt")
        assert caught.value.expires == sent.expires
    assert _listing(inbox) == []


@pytest.mark.asyncio
async def test_a_message_opened_before_is_a_replay_unless_reopened(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        sent = await anna.send(**message_args(consent_id, body=b"forsta"))
        first = await bo.fetch(sent.message_id, tmp_path / "1.txt")
        assert not first.reopened
        with pytest.raises(AlreadyOpened):
            await bo.fetch(sent.message_id, tmp_path / "2.txt")
        again = await bo.fetch(sent.message_id, tmp_path / "2.txt", reopen=True)
        assert again.reopened
        assert again.header_hash == first.header_hash
        assert (tmp_path / "2.txt").read_bytes() == b"forsta"
    # Another process of the same device knows it from its own record (opened/<id>.json).
    async with client(gateway, BO) as later:
        with pytest.raises(AlreadyOpened):
            await later.fetch(sent.message_id, tmp_path / "3.txt", opened_before=first.header_hash)
        # Recorded hH and served envelope differ: another envelope under that id.
        with pytest.raises(EnvelopeReplayed):
            await later.fetch(
                sent.message_id, tmp_path / "3.txt", opened_before="00" * 32, reopen=True
            )
    assert not (tmp_path / "3.txt").exists()


@pytest.mark.asyncio
async def test_leftover_partial_plaintext_is_removed_first(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    dest = tmp_path / "case.txt"
    leftover = tmp_path / ".case.txt.k3j_9xq2.part"  # keys.protocol.envelope_open's temp name
    leftover.write_bytes(b"half of a decrypted case")
    others = [
        tmp_path / ".other.txt.k3j_9xq2.part",  # another destination's
        tmp_path / "case.txt.part",  # a browser download, say
        tmp_path / ".case.txt.k3j_9xq2.part.bak",
    ]
    for path in others:
        path.write_bytes(b"not ours")
    link = tmp_path / ".case.txt.aaaaaaaa.part"
    link.symlink_to(others[0])  # a symlink under our name is left alone
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        sent = await anna.send(**message_args(consent_id, body=b"hela"))
        await bo.fetch(sent.message_id, dest)
    assert not leftover.exists()
    assert dest.read_bytes() == b"hela"
    assert all(p.read_bytes() == b"not ours" for p in others)
    assert link.is_symlink()


@pytest.mark.asyncio
async def test_own_destroyed_key_is_shredded_and_changes_are_reported(
    gateway: RunningGateway,
) -> None:
    async with client(gateway, ANNA) as anna:
        await anna.sync_directory()  # anna knows bertil before the changes
        v2 = DeviceKeyPair.generate(KeyId.parse("so-nordost/bertil/2"))
        bertil_store = device_keystore(gateway, BERTIL)
        bertil_store.add_version(v2)
        b = gateway.builder
        await gateway.append(
            b.rotate(v2, min_encryption_version=1),
            b.entry(
                "set_min_encryption_version",
                {"device": "so-nordost/bertil", "min_encryption_version": 2},
            ),
            b.entry("destroy_key", {"device": "so-nordost/bertil", "version": 1}),
        )
        seen = await anna.sync_directory()
    assert [(c.kind, c.old_min_version, c.new_min_version) for c in seen.changes] == [
        ("rotated", None, None),
        ("min_raised", 1, 2),
        ("destroyed", None, None),
    ]
    async with client(gateway, BERTIL, keystore=bertil_store) as bertil:
        result = await bertil.sync_directory()
        assert result.shredded == (1,)
        assert sorted(bertil_store.keypairs) == [2]
        assert [(n.kind, n.version, n.held) for n in result.own] == [
            ("rotated", 2, True),
            ("min_raised", 2, False),
            ("destroyed", 1, False),
        ]
        assert result.changes == []  # its own key is not a colleague's key change
        again = await bertil.sync_directory()
        assert again.own == []
        assert again.shredded == ()


@pytest.mark.asyncio
async def test_a_preloaded_directory_sync_is_continued_not_repeated(
    gateway: RunningGateway,
) -> None:
    keystore = device_keystore(gateway, ANNA)
    sync = DirectorySync(keystore)
    async with client(gateway, ANNA, keystore=keystore) as first:
        await sync.sync(first.transport)
    async with client(gateway, ANNA, keystore=keystore, directory_sync=sync) as sdk:
        assert sdk.directory_sync is sync
        result = await sdk.sync_directory()
        assert result.fetched == 0
        assert result.directory is sync.directory
    with pytest.raises(ValueError, match="another keystore"):
        client(gateway, ANNA, directory_sync=sync)

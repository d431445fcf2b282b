"""What a crash leaves in the blob directory, on both stores: the fetch publishes an
accepted upload a kill left under its temp name, the sweep (also run at start-up)
publishes what was accepted and destroys the rest without touching an upload in flight,
and a message's end destroys every file of it — also one a killed earlier try left.

The crash states are made with the files a kill leaves (the process-level kill itself
is in ``tests/clients/sdk/test_sdk_crash.py``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from gateway.appkeys import SESSIONMAKER
from gateway.blobs import BlobStore, message_dir_name
from gateway.recovery import EMPTY_PART_GRACE_S, sweep_orphan_blobs
from gateway.settings import Settings, SettingsError
from tests.support.fixtures import StartGateway
from tests.support.gateway import RunningGateway, blob_files
from tests.support.messages import (
    BO,
    header_for,
    message_row,
    receipt_for,
    record_consent,
    seal_envelope,
    send,
    send_new,
)


@pytest_asyncio.fixture
async def gateway(start: StartGateway) -> RunningGateway:
    """This module is about the blob *files*: every envelope in a file, none inline."""
    return await start(blob_inline_bytes=0)


def unpublish(root: Path, blob_key: str) -> Path:
    """A kill between the commit and the rename: the row's file under its temp name."""
    store = BlobStore(root)
    os.replace(store.path(blob_key), store.temp_path(blob_key))
    return store.temp_path(blob_key)


def leftover(root: Path, message_id: str, data: bytes, *, temp: bool = True) -> Path:
    """A file a killed upload of ``message_id`` left (no row references it)."""
    directory = root / message_dir_name(message_id)
    directory.mkdir(parents=True, exist_ok=True)
    name = secrets.token_hex(16)
    path = directory / (f".{name}.part" if temp else name)
    path.write_bytes(data)
    return path


@pytest.mark.asyncio
async def test_fetch_publishes_an_accepted_upload_a_kill_left_unrenamed(gateway) -> None:
    consent = await record_consent(gateway)
    header, envelope = await send_new(gateway, consent["consent_id"])
    row = await message_row(gateway, header.message_id)
    assert row is not None
    assert row.blob_key is not None
    temp = unpublish(gateway.settings.blobs, row.blob_key)
    # At once, no sweep run: the recipient gets the envelope, not "try again later".
    fetched = await gateway.client(BO).get(f"/v1/messages/{header.message_id}/envelope")
    assert fetched.status == 200, fetched.body
    assert fetched.body == envelope
    assert not temp.exists()
    assert BlobStore(gateway.settings.blobs).path(row.blob_key).read_bytes() == envelope


@pytest.mark.asyncio
async def test_sweep_publishes_the_accepted_destroys_the_rest_and_spares_live_uploads(
    gateway,
) -> None:
    root = gateway.settings.blobs
    blobs = BlobStore(root)
    consent = await record_consent(gateway)
    header, envelope = await send_new(gateway, consent["consent_id"])
    row = await message_row(gateway, header.message_id)
    assert row is not None
    assert row.blob_key is not None
    unpublished = unpublish(root, row.blob_key)
    # A kill before the commit: a whole envelope and no row (the retry got another name).
    killed_try = leftover(root, header.message_id, envelope)
    never_retried = leftover(root, "0b1c" + secrets.token_hex(16), b"refused bytes")
    ended = leftover(root, secrets.token_hex(8), b"content of an ended message", temp=False)
    young_empty = leftover(root, secrets.token_hex(8), b"")
    old_empty = leftover(root, secrets.token_hex(8), b"")
    old = time.time() - EMPTY_PART_GRACE_S - 1
    os.utime(old_empty, (old, old))
    # An upload streaming right now (this process holds its lock, as any instance would).
    gate = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b"first chunk of a live upload"
        await gate.wait()
        yield b" and the rest"

    live_id = secrets.token_hex(8)
    streaming = asyncio.create_task(blobs.receive(live_id, trickle()))
    live_dir = root / message_dir_name(live_id)
    for _ in range(200):
        if any(p.stat().st_size for p in live_dir.glob(".*.part")):
            break
        await asyncio.sleep(0.01)

    removed = await sweep_orphan_blobs(root, gateway.app[SESSIONMAKER])

    assert removed == 4  # the killed try, the never-retried upload, the ended one, old empty
    for gone in (killed_try, never_retried, ended, old_empty):
        assert not gone.exists()
    assert not never_retried.parent.exists()  # its directory went with it
    assert young_empty.exists()  # maybe an upload that has not taken its lock yet
    assert not unpublished.exists()
    assert blobs.path(row.blob_key).read_bytes() == envelope  # published
    gate.set()
    upload = await streaming  # the live upload was not disturbed
    assert upload.temp.read_bytes() == b"first chunk of a live upload and the rest"
    blobs.discard(upload)
    assert not live_dir.exists()
    fetched = await gateway.client(BO).get(f"/v1/messages/{header.message_id}/envelope")
    assert fetched.status == 200


@pytest.mark.asyncio
async def test_the_end_of_a_message_destroys_every_file_of_it(gateway) -> None:
    root = gateway.settings.blobs
    consent = await record_consent(gateway)
    header = header_for(gateway, consent_id=consent["consent_id"])
    envelope = seal_envelope(gateway, header)
    mid = header.message_id
    # A first try killed before its commit, on an instance that has not restarted since.
    killed_try = leftover(root, mid, envelope)
    assert (await send(gateway, str(header.sender), mid, envelope)).status == 201
    assert len(blob_files(gateway)) == 2
    bo = gateway.client(BO)
    assert (await bo.get(f"/v1/messages/{mid}/envelope")).status == 200
    assert (
        await bo.post(f"/v1/messages/{mid}/receipt", receipt_for(gateway, header))
    ).status == 200
    assert not killed_try.exists()
    assert not (root / message_dir_name(mid)).exists()
    assert blob_files(gateway) == []


@pytest.mark.asyncio
async def test_a_retry_after_the_end_leaves_nothing_behind(gateway) -> None:
    consent = await record_consent(gateway)
    header, envelope = await send_new(gateway, consent["consent_id"])
    mid = header.message_id
    assert (
        await gateway.client(str(header.sender)).post(f"/v1/messages/{mid}/recall")
    ).status == 200
    assert blob_files(gateway) == []
    # The sender's late retry gets its original answer; its bytes are not kept.
    assert (await send(gateway, str(header.sender), mid, envelope)).status == 200
    assert list(gateway.settings.blobs.iterdir()) == []


def test_the_crash_switch_exists_only_in_test_mode(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="test mode"):
        Settings.load(None, {"STAFETT_TEST_CRASH_AT": "after_commit"})
    with pytest.raises(SettingsError, match="test_crash_at"):
        Settings(insecure_fast_kdf=True, test_crash_at="whenever")
    env = {"STAFETT_TEST_CRASH_AT": "before_commit", "STAFETT_INSECURE_FAST_KDF": "1"}
    assert Settings.load(None, env).test_crash_at == "before_commit"
    assert Settings().test_crash_at == ""

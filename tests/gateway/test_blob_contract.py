"""One contract, two blob stores: the local directory and PostgreSQL (issue 12 item 2).

Every test runs against both (like mautrix's store tests): streamed in and out,
published only with the message row, refused uploads leave nothing, the message's end
deletes the content in its transaction (a rollback keeps it), a fetch that began
before the end still gets the whole envelope, and after a crash the sweep publishes
what a row references and destroys what none does — without touching a live upload.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from gateway.blobs import UPLOAD_HASH_PERSON, BlobStore, unlink_all
from gateway.blobs_pg import CHUNK_BYTES, STALE_S, PgBlobReader, PgBlobStore
from gateway.blobstore import AnyUpload, Blobs
from gateway.db import message_store
from gateway.db.engine import SessionMaker, make_sessionmaker, open_engine
from gateway.db.models import BlobChunkRow, BlobUploadRow, MessageRow
from gateway.migrations import migrate
from gateway.services.message_content import destroy_content
from keys.crypto.canonical import Hasher
from keys.protocol.problems import ServiceUnavailable

PIECE = 64 * 1024


@dataclass
class Store:
    blobs: Blobs
    db: SessionMaker
    root: Path


@pytest_asyncio.fixture(
    params=["directory", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    name = ""
    if request.param == "directory":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        name = f"b_{uuid.uuid4().hex[:16]}"
        conn = await asyncpg.connect(cluster.dsn("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = cluster.url(name)
    await migrate(url)
    engine = open_engine(url)
    db = make_sessionmaker(engine)
    blobs: Blobs = BlobStore(tmp_path / "blobs") if not name else PgBlobStore(engine, db)
    try:
        yield Store(blobs, db, tmp_path / "blobs")
    finally:
        await blobs.aclose()
        await engine.dispose()
        if name:
            conn = await asyncpg.connect(cluster.dsn("postgres"))
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


def _content(size: int) -> bytes:
    return os.urandom(size)


async def _pieces(data: bytes, *, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(data), PIECE):
        if fail_after is not None and start >= fail_after:
            raise ConnectionResetError("the sender went away")
        yield data[start : start + PIECE]


def _row(message_id: str, upload: AnyUpload) -> MessageRow:
    return MessageRow(
        id=message_id,
        sender_kid="so-nordost/anna/1",
        sender_unit="so-nordost",
        recipient_unit="sav",
        consent_id="c-1",
        consent_version=1,
        subject_ref="ab" * 32,
        category="threat_assessment",
        purpose="transfer",
        header_hash="cd" * 32,
        envelope_hash=upload.upload_hash,
        size=upload.size,
        created=100,
        expires=10**10,
        due=None,
        state="accepted",
        state_changed_at=100,
        accepted_at=100,
        delivered_at=None,
        handed_over_at=None,
        blob_key=upload.key,
    )


async def _accept(store: Store, data: bytes, *, publish: bool = True) -> tuple[str, AnyUpload]:
    """receive → claim + row in one transaction → publish, as an accepted send does."""
    message_id = uuid.uuid4().hex
    upload = await store.blobs.receive(message_id, _pieces(data))
    async with store.db.begin() as session:
        await message_store.insert(session, _row(message_id, upload), ["sav/bo/1"])
        await store.blobs.claim(session, upload)
    if publish:
        store.blobs.publish(upload)
    return message_id, upload


async def _drain(reader: BinaryIO | PgBlobReader) -> bytes:
    if isinstance(reader, PgBlobReader):
        out = bytearray()
        try:
            async for piece in reader.read_chunks():
                assert len(piece) <= CHUNK_BYTES
                out += piece
        finally:
            await reader.aclose()
        return bytes(out)
    with reader:
        return reader.read()


async def _read(store: Store, key: str) -> bytes:
    return await _drain(await store.blobs.open_reader(key))


async def _stored(store: Store) -> int:
    """How many pieces of content exist anywhere in the store (files or rows)."""
    if isinstance(store.blobs, BlobStore):
        if not store.root.exists():
            return 0
        return sum(1 for p in store.root.rglob("*") if p.is_file())
    async with store.db() as session:
        chunks = await session.scalar(select(func.count()).select_from(BlobChunkRow))
        markers = await session.scalar(select(func.count()).select_from(BlobUploadRow))
    return int(chunks or 0) + int(markers or 0)


def _later() -> float:
    return time.time() + STALE_S + 60


@pytest.mark.asyncio
async def test_round_trip_streams_in_chunks(store: Store) -> None:
    data = _content(3 * CHUNK_BYTES + 12_345)  # several chunks and a short tail
    _, upload = await _accept(store, data)
    hasher = Hasher(UPLOAD_HASH_PERSON)
    hasher.update(data)
    assert upload.size == len(data)
    assert upload.upload_hash == hasher.digest().hex()
    assert await _read(store, upload.key) == data
    reader = await store.blobs.open_reader(upload.key)
    if isinstance(reader, PgBlobReader):
        assert reader.stored_size() == len(data)
        await reader.aclose()
    else:
        assert os.fstat(reader.fileno()).st_size == len(data)
        reader.close()


@pytest.mark.asyncio
async def test_empty_envelope_and_unknown_key(store: Store) -> None:
    _, upload = await _accept(store, b"")
    assert upload.size == 0
    with pytest.raises(FileNotFoundError):
        await store.blobs.open_reader(f"{'0' * 32}/{'1' * 32}")


@pytest.mark.asyncio
async def test_refused_and_broken_uploads_leave_nothing(store: Store) -> None:
    upload = await store.blobs.receive("m-refused", _pieces(_content(2 * CHUNK_BYTES)))
    store.blobs.discard(upload)
    with pytest.raises(ConnectionResetError):
        await store.blobs.receive(
            "m-broken", _pieces(_content(2 * CHUNK_BYTES), fail_after=CHUNK_BYTES + PIECE)
        )
    await store.blobs.drain()
    assert await _stored(store) == 0


@pytest.mark.asyncio
async def test_end_deletes_in_its_transaction_and_an_open_fetch_finishes(store: Store) -> None:
    data = _content(2 * CHUNK_BYTES + 1)
    message_id, upload = await _accept(store, data)
    # A rolled-back end keeps the content.
    async with store.db.begin() as session:
        files = await destroy_content(session, message_id, blobs=store.blobs)
        await session.rollback()
    assert await _read(store, upload.key) == data
    # A fetch that began before the end still streams the whole envelope.
    reader = await store.blobs.open_reader(upload.key)
    async with store.db.begin() as session:
        files = await destroy_content(session, message_id, blobs=store.blobs)
    unlink_all(files)
    assert await _drain(reader) == data
    with pytest.raises(FileNotFoundError):
        await store.blobs.open_reader(upload.key)
    assert await _stored(store) == 0
    # Idempotent: a second end finds nothing to delete.
    async with store.db.begin() as session:
        assert await destroy_content(session, message_id, blobs=store.blobs) == []


@pytest.mark.asyncio
async def test_sweep_after_a_crash_publishes_referenced_and_destroys_the_rest(
    store: Store,
) -> None:
    data = _content(CHUNK_BYTES + 7)
    # Killed after the commit, before publish: the row references the upload.
    _, committed = await _accept(store, data, publish=False)
    committed.release()  # the process is gone: lock dropped / heartbeat stopped
    # Killed before any decision: no row references it.
    orphan = await store.blobs.receive("m-orphan", _pieces(_content(CHUNK_BYTES + 9)))
    orphan.release()
    # A live upload on another instance: never disturbed.
    live = await store.blobs.receive("m-live", _pieces(_content(PIECE)))
    removed = await store.blobs.sweep(store.db, now=_later() if _pg(store) else None)
    assert removed >= 1
    assert await _read(store, committed.key) == data
    with pytest.raises(FileNotFoundError):
        await store.blobs.open_reader(orphan.key)
    if _pg(store):
        # The live one's heartbeat is fresh at the real clock.
        await store.blobs.sweep(store.db)
    else:
        assert await store.blobs.sweep(store.db) == 0
    store.blobs.discard(live)
    await store.blobs.drain()
    # Only the published envelope remains; a second sweep changes nothing.
    before = await _stored(store)
    assert await store.blobs.sweep(store.db, now=_later() if _pg(store) else None) == 0
    assert await _stored(store) == before


def _pg(store: Store) -> bool:
    return isinstance(store.blobs, PgBlobStore)


@pytest.mark.asyncio
@pytest.mark.postgres
async def test_postgresql_refuses_to_commit_an_upload_the_sweep_took(
    pg_cluster: object, tmp_path: Path
) -> None:
    """A stalled owner (past STALE_S) finds its marker gone: 503, and no row points at
    deleted chunks."""
    cluster = pg_cluster
    name = f"b_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(cluster.dsn("postgres"))  # type: ignore[attr-defined]
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = cluster.url(name)  # type: ignore[attr-defined]
    await migrate(url)
    engine = open_engine(url)
    db = make_sessionmaker(engine)
    blobs = PgBlobStore(engine, db)
    try:
        upload = await blobs.receive("m-slow", _pieces(_content(CHUNK_BYTES * 2)))
        async with db() as session:
            sizes = await session.scalars(select(func.length(BlobChunkRow.data)))
            assert max(sizes) <= CHUNK_BYTES
        assert await blobs.sweep(db, now=_later()) == 1

        async def commit() -> None:
            async with db.begin() as session:
                await message_store.insert(session, _row("m-slow", upload), ["sav/bo/1"])
                await blobs.claim(session, upload)

        with pytest.raises(ServiceUnavailable):
            await commit()
        async with db() as session:
            assert await message_store.get(session, "m-slow") is None
        blobs.discard(upload)
    finally:
        await blobs.aclose()
        await engine.dispose()

"""Envelope bodies in PostgreSQL, shared by instances on several hosts (issue 12 item 2).

The same contract as the directory store (``gateway.blobs``): streamed in, never
whole in memory, published only when the message row is committed, deleted with the
message's end, and a crash at any point leaves either an accepted message whose
envelope is whole or no trace of the upload. Selected by ``blob_store = "postgresql"``.

What the directory store's "temp file + lock" becomes here:

1. ``receive`` commits an *upload marker* (``blob_uploads``: key, owner, heartbeat)
   before the first byte, then one committed row per chunk of at most
   :data:`CHUNK_BYTES` (``blob_chunks``), refreshing the heartbeat as it goes and every
   :data:`HEARTBEAT_S` while the upload waits for its decision;
2. the transaction that stores the message row deletes the marker (:meth:`claim`): from
   that commit on, the row owns the chunks — publishing *is* that commit, so no window
   exists where a row points at an unpublished blob;
3. a refused upload deletes its marker and chunks (``discard``).

The sweep (start-up and hourly) takes an upload whose heartbeat is older than
:data:`STALE_S` as dead (its owner crashed, on this host or another): ``SELECT … FOR
UPDATE SKIP LOCKED`` on the marker, so an owner that is claiming it right now is never
disturbed; then it drops the chunks unless a message row references them. An owner
that was only slow finds its marker gone at :meth:`claim` and answers 503 (retryable):
no message row ever references chunks a sweep deleted. A heartbeat is the owner's
clock; instances need synchronised clocks anyway (request signatures, clock_skew_s),
and :data:`STALE_S` is far above any skew they tolerate.

Deletion: :meth:`destroy` deletes the chunks in the transaction that ends the message,
so content and row go together (no orphan files, nothing to unlink after the commit).
What PostgreSQL keeps afterwards until VACUUM is in SECURITY.md.

A fetch reads in a ``REPEATABLE READ`` snapshot on its own connection: a receipt that
deletes the chunks mid-download does not cut off a fetch that began before it (the
directory store's "an open handle survives an unlink").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from gateway.blobs import UPLOAD_HASH_PERSON, Upload, message_dir_name
from gateway.db import blob_chunk_store as sql
from gateway.db import handover_store
from gateway.db.engine import SessionMaker, open_engine
from gateway.db.units import Tx, in_session
from keys.crypto.canonical import Hasher
from keys.protocol.problems import ServiceUnavailable

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024  # one bytea row; bounded memory per upload and per fetch
HEARTBEAT_S = 20
STALE_S = 300  # no heartbeat for this long: the owner is dead


@dataclass
class PgUpload:
    """A received upload: its chunks are committed, its marker says "alive".

    No local copy: the envelope is checked while it streams in
    (``keys.protocol.envelope_verify_stream``), so nothing reads the bytes again before
    the decision; the database copy is what is published.
    """

    key: str
    size: int
    upload_hash: str
    heartbeat: asyncio.Task[None] | None = field(default=None, repr=False)
    # An envelope of at most CHUNK_BYTES: held here and written as its one chunk by the
    # transaction that accepts it (no marker, no transaction of its own, no heartbeat).
    inline: bytes | None = field(default=None, repr=False)

    def release(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            self.heartbeat = None


class PgBlobReader:
    """One envelope, read chunk by chunk from a snapshot on a dedicated connection."""

    def __init__(
        self,
        conn: AsyncConnection | None,
        key: str,
        chunks: int,
        size: int,
        *,
        preloaded: bytes | None = None,
    ) -> None:
        self._conn = conn
        self._preloaded = preloaded
        self.key = key
        self.chunks = chunks
        self.size = size
        self._closing: asyncio.Task[None] | None = None

    def stored_size(self) -> int:
        return self.size

    async def read_chunks(self) -> AsyncIterator[bytes]:
        preloaded = self._preloaded
        if preloaded is not None:
            self._preloaded = None
            yield preloaded
            return
        for seq in range(self.chunks):
            if self._conn is None:
                return
            data = await sql.chunk(self._conn, self.key, seq)
            if data is None:  # impossible inside the snapshot; never serve a gap
                raise OSError("a blob chunk is missing")
            yield data

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.rollback()
            await conn.close()

    def close(self) -> None:
        """Synchronous close for error paths: the connection goes back in a task."""
        if self._conn is not None and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.aclose())


class PgBlobStore:
    """Blobs in the gateway's own PostgreSQL database (``blob_store = "postgresql"``)."""

    def __init__(self, engine: AsyncEngine, sessionmaker: SessionMaker) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("the postgresql blob store needs a PostgreSQL database_url")
        self.engine = engine
        self.sessionmaker = sessionmaker
        # Fetches read on a pool of their own. Threat (found by the relay benchmark): a
        # fetch holds a connection of the main pool (its row lock) while it opens the
        # reader; with the reader in the same pool, enough concurrent fetches starve it
        # and wait on each other until the pool timeout. Streaming readers never wait
        # for the main pool, so two pools cannot deadlock.
        self._readers = open_engine(engine.url.render_as_string(hide_password=False))
        # Names this process's uploads (diagnostics and claim); random, never reused.
        self.owner = secrets.token_hex(8)
        self._background: set[asyncio.Task[None]] = set()

    async def receive(self, message_id: str, chunks: AsyncIterator[bytes]) -> PgUpload:
        key = f"{message_dir_name(message_id)}/{secrets.token_hex(16)}"
        upload = PgUpload(key, 0, "")
        hasher = Hasher(UPLOAD_HASH_PERSON)
        pending = bytearray()
        seq = 0
        try:
            async for piece in chunks:
                hasher.update(piece)
                upload.size += len(piece)
                pending += piece
                while len(pending) >= CHUNK_BYTES:
                    if upload.heartbeat is None:  # from the first committed chunk on
                        upload.heartbeat = asyncio.get_running_loop().create_task(self._beat(key))
                    await self._put(key, seq, bytes(pending[:CHUNK_BYTES]))
                    del pending[:CHUNK_BYTES]
                    seq += 1
            if seq == 0:
                # At most CHUNK_BYTES (most envelopes), held in memory until here: the
                # accepting transaction writes it (claim_in), a refused one never is.
                upload.inline = bytes(pending)
            elif pending:
                await self._put(key, seq, bytes(pending))
        except BaseException:
            self.discard(upload)
            raise
        upload.upload_hash = hasher.digest().hex()
        return upload

    async def _put(self, key: str, seq: int, data: bytes) -> None:
        # One committed row per chunk: the transaction stays short, and a crash leaves
        # committed chunks under a marker the sweep resolves. The marker comes in the
        # first chunk's transaction: no chunk is ever visible without it (and a small
        # envelope costs one transaction, not two).
        async with self.sessionmaker.begin() as session:
            now = int(time.time())
            if seq == 0:
                await sql.start_upload(session, key, self.owner, now)
            await sql.add_chunk(session, key, seq, data, now)

    async def _beat(self, key: str) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                async with self.sessionmaker.begin() as session:
                    await sql.touch(session, key, int(time.time()))
            except Exception as exc:  # the next beat retries; the sweep tolerates STALE_S
                log.warning("blob upload heartbeat failed (%s)", type(exc).__qualname__)

    async def claim(self, session: AsyncSession, upload: Upload | PgUpload) -> None:
        """:meth:`claim_in` in an ORM session's transaction."""
        await in_session(session, lambda tx: self.claim_in(tx, upload))

    def claim_in(self, tx: Tx, upload: Upload | PgUpload) -> None:
        """In the transaction that stores the message row: the row takes the chunks."""
        if not isinstance(upload, PgUpload):
            raise TypeError("an upload of another blob store")
        if upload.inline is not None:
            handover_store.insert_chunk(tx.conn, upload.key, 0, upload.inline)
            return
        if not handover_store.claim_upload(tx.conn, upload.key, self.owner):
            # Threat: a row referencing chunks a sweep already deleted (this process was
            # stalled past STALE_S). Refused before the commit; the sender retries.
            raise ServiceUnavailable("the upload took too long to be decided; send it again")

    def destroy_in(self, tx: Tx, key: str) -> list[Path]:
        """The message's end: the chunks go in its transaction; nothing is left to
        unlink after the commit."""
        handover_store.delete_chunks(tx.conn, key)
        return []

    def publish(self, upload: Upload | PgUpload) -> None:
        """Nothing left to move: the commit that claimed the upload published it."""
        upload.release()

    def discard(self, upload: Upload | PgUpload) -> None:
        """Forget a refused or failed upload: marker and chunks, in the background (a
        refusal is answered at once). If this never runs (a crash), the sweep does it."""
        if not isinstance(upload, PgUpload):
            raise TypeError("an upload of another blob store")
        upload.release()
        if upload.inline is not None:
            return  # never written
        task = asyncio.get_running_loop().create_task(self._drop(upload.key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _drop(self, key: str) -> None:
        try:
            async with self.sessionmaker.begin() as session:
                await sql.drop_unreferenced(session, key)
        except Exception as exc:
            log.warning(
                "could not drop a refused upload (%s); left to the sweep", type(exc).__qualname__
            )

    async def drain(self) -> None:
        """Wait for background discards (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        await self._readers.dispose()

    async def open_reader(self, key: str) -> PgBlobReader:
        """Open ``key`` for streaming; FileNotFoundError if it holds no chunks."""
        conn = await self._readers.connect()
        try:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            await conn.begin()
            chunks, size = await sql.extent(conn, key)  # the snapshot starts here
        except BaseException:
            await conn.close()
            raise
        if chunks == 0:
            await conn.close()
            raise FileNotFoundError(key)
        if chunks == 1:
            # One chunk (≤ CHUNK_BYTES; most envelopes): read it now and give the
            # connection back at once instead of holding it for the download.
            try:
                data = await sql.chunk(conn, key, 0)
            finally:
                await conn.close()
            if data is None:
                raise FileNotFoundError(key)
            return PgBlobReader(None, key, 1, size, preloaded=data)
        return PgBlobReader(conn, key, chunks, size)

    def notify_wiped(self) -> None:
        """Nothing to do: PostgreSQL's own VACUUM reclaims deleted chunks."""

    async def sweep(self, sessionmaker: SessionMaker, *, now: float | None = None) -> int:
        """Resolve dead uploads and ownerless chunks; returns how many blobs were removed."""
        clock = int(now if now is not None else time.time())
        before = clock - STALE_S
        removed = 0
        async with sessionmaker() as session:
            stale = await sql.stale_uploads(session, before)
        for key in stale:
            async with sessionmaker.begin() as session:
                if await sql.lock_stale(session, key, before):
                    removed += await sql.drop_unreferenced(session, key) > 0
        async with sessionmaker() as session:
            orphans = await sql.orphan_keys(session)
        for key in orphans:
            async with sessionmaker.begin() as session:
                removed += await sql.drop_unreferenced(session, key) > 0
        return removed

"""Envelope bodies on disk: streamed in, published only when accepted, deleted at once.

Layout: one directory per message under ``settings.blobs``, named by a hash of the
message id (never the raw id: the path parameter is caller input, and the directory
listing should not read as a list of messages)::

    blobs/<m>/.<r>.part   an upload: streaming, or complete and awaiting its decision
    blobs/<m>/<r>         the published envelope of the accepted upload

``<r>`` is random per upload (a refused upload and a retry must not share a path); the
message row's ``blob_key`` is ``<m>/<r>``. Every file a message ever had is in its
directory, so the message's end removes the directory and with it every copy, also a
temp file that a killed upload of the same id left behind.

The order that makes a kill (SIGKILL, power loss) at any point safe:

1. the upload streams into ``.<r>.part``, created and then ``flock``-ed by its owner
   *before the first byte is written*, and the lock is held until the file is renamed
   or unlinked; fsync of the file and of the directory at the end (a small body is held
   in memory while it streams and written whole, with the same create-lock-write-fsync);
2. the database commit stores ``blob_key`` (so a referenced temp file is always whole);
3. the rename ``.<r>.part`` → ``<r>`` (publish).

Hence, for any ``.<r>.part`` with bytes in it whose lock can be taken, its owner is dead
(the kernel drops a dead process's locks): if a row references it, it is published
(whatever step 3 did not do); otherwise it is destroyed (a refused, abandoned or
interrupted upload). A locked one is an upload in flight on some instance and is left
alone. That rule (``gateway.recovery``) runs at start-up and hourly; the fetch path
also publishes a referenced temp file itself (:meth:`BlobStore.open`), so an accepted
message is never answered "not available".

Threats: a half-written upload served as an envelope (temp name until accepted, fsync
before commit); memory exhaustion by a large body (64 KiB chunks, never whole in
memory; only a body of at most ``SMALL_BODY_BYTES`` is held whole until it is written);
content outliving its message (the message's end removes its directory after the
commit, and the sweep removes anything a crash left); another local user reading blobs
(0700 directories, 0600 files).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import signal
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from gateway.db import handover_store
from gateway.db.units import in_session
from gateway.settings import Settings
from keys.crypto.canonical import Hasher
from keys.crypto.files import fsync_path

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from gateway.blobs_pg import PgUpload
    from gateway.db.engine import SessionMaker
    from gateway.db.units import Tx

log = logging.getLogger(__name__)

# Hash of the whole upload as received: answers "is this retry byte-identical?" for
# idempotent sends. Gateway-internal; the person keeps it apart from every other hash.
UPLOAD_HASH_PERSON = b"stafett.envelope"
READ_CHUNK = 64 * 1024
# An upload up to this size stays in memory until it is whole (most envelopes; bounded:
# verified_body caps the body, and this caps what a single upload holds in memory).
SMALL_BODY_BYTES = 256 * 1024
HEX32 = re.compile(r"^[0-9a-f]{32}$")
_KEY = re.compile(r"^([0-9a-f]{32})/([0-9a-f]{32})$")
PART = re.compile(r"^\.([0-9a-f]{32})\.part$")


def message_dir_name(message_id: str) -> str:
    """The directory of every file of ``message_id`` (any string: a hash, never a path)."""
    data = b"stafett.blob-dir\x00" + message_id.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass
class Upload:
    """A fully received upload in its locked temp file (not yet trusted or published).

    ``fd`` holds the lock that tells every sweeper this upload is alive; it is closed
    (and the lock dropped) only after the file was published or discarded.
    """

    key: str
    temp: Path
    size: int
    upload_hash: str  # hex
    fd: int
    # A small envelope kept in the database (BlobStore.inline_max): no file at all.
    inline: bytes | None = None

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class BlobStore:
    """The blob directory. Cheap to construct; directories are made on first write."""

    def __init__(self, root: Path, *, crash_at: str = "", inline_max: int = 0) -> None:
        self.root = root
        self._crash_at = crash_at
        # Envelopes up to this size go into the database with their message row
        # (``blob_chunks``, one chunk, written by :meth:`claim_in`); larger ones are
        # files as described above. 0 (the default here): files only.
        self.inline_max = inline_max
        # Told when inline envelope bytes were deleted outside a unit of work (the WAL
        # scrub of gateway.db.units.SqliteUnits; wired by make_blob_store).
        self.on_wiped: Callable[[], None] | None = None

    @classmethod
    def of(cls, settings: Settings) -> BlobStore:
        # Inline on SQLite (the single-host default); on PostgreSQL the envelopes are
        # files here or chunks in the PostgreSQL blob store (blob_store = postgresql).
        inline = settings.blob_inline_bytes if settings.db_url.startswith("sqlite") else 0
        return cls(settings.blobs, crash_at=settings.test_crash_at, inline_max=inline)

    def path(self, key: str) -> Path:
        # Keys come from our own database, but a path is only built from a checked
        # key so a corrupted row can never point outside the blob directory.
        match = _KEY.fullmatch(key)
        if not match:
            raise ValueError("malformed blob key")
        return self.root / match.group(1) / match.group(2)

    def temp_path(self, key: str) -> Path:
        final = self.path(key)
        return final.parent / f".{final.name}.part"

    def message_dir(self, key: str) -> Path:
        return self.path(key).parent

    async def receive(self, message_id: str, chunks: AsyncIterator[bytes]) -> Upload:
        """Stream ``chunks`` into a new locked temp file in the message's directory,
        hashing as it goes; fsync at the end.

        A body of at most :data:`SMALL_BODY_BYTES` is held in memory until it is
        complete and then written in one go (one thread hop instead of one per chunk;
        a refused one never touches the disk); a larger one streams into its file from
        the chunk that crossed the limit. The file is created and locked before its
        first byte either way, and fsync'd before this returns, so the crash rules
        above hold unchanged.

        On any error (size limit, digest mismatch, disconnect, a refusal raised by the
        chunk source) the temp file is removed and the error propagates.
        """
        key = f"{message_dir_name(message_id)}/{secrets.token_hex(16)}"
        temp = self.temp_path(key)
        hasher = Hasher(UPLOAD_HASH_PERSON)
        held = bytearray()  # the body while it is small
        fd = -1
        size = 0
        try:
            async for chunk in chunks:
                hasher.update(chunk)
                size += len(chunk)
                if fd < 0:
                    held += chunk
                    if len(held) <= SMALL_BODY_BYTES:
                        continue
                    fd = _create_locked(temp)
                    chunk, held = bytes(held), bytearray()
                await asyncio.to_thread(_write_all, fd, chunk)
            if fd < 0 and len(held) <= self.inline_max:
                # Stored by the accepting unit of work, in its transaction: nothing on
                # disk to create, sync, lock, publish or sweep.
                self._crash("before_commit")
                return Upload(key, temp, size, hasher.digest().hex(), -1, inline=bytes(held))
            if fd < 0:
                fd = _create_locked(temp)
            # Accepted means kept: the sender is told 201 only for bytes on disk, under
            # a name that survives a power loss too.
            await asyncio.to_thread(_write_and_sync, fd, bytes(held), temp.parent)
        except BaseException:
            if fd >= 0:
                temp.unlink(missing_ok=True)
                os.close(fd)
                remove_dir_if_empty(temp.parent)
            raise
        self._crash("before_commit")
        return Upload(key, temp, size, hasher.digest().hex(), fd)

    async def claim(self, session: AsyncSession, upload: Upload | PgUpload) -> None:
        """:meth:`claim_in` in an ORM session's transaction."""
        await in_session(session, lambda tx: self.claim_in(tx, upload))

    def claim_in(self, tx: Tx, upload: Upload | PgUpload) -> None:
        """In the row's transaction: an inline envelope is stored; a file needs nothing
        (the rename after the commit publishes it; the PostgreSQL store claims here)."""
        if isinstance(upload, Upload) and upload.inline is not None:
            handover_store.insert_chunk(tx.conn, upload.key, 0, upload.inline)

    def destroy_in(self, tx: Tx, key: str) -> list[Path]:
        """The message's end, in its transaction: an inline envelope goes with it;
        otherwise the files to unlink after its commit."""
        if handover_store.delete_chunks(tx.conn, key):
            tx.wiped_content = True  # its WAL pages are scrubbed when the store is idle
            return []
        return self.content_paths(key)

    def publish(self, upload: Upload | PgUpload) -> None:
        """Rename an accepted upload into place (after the database commit).

        The file may already be gone: published by a fetch that got there first, or
        destroyed because the message ended in between — both fine.
        """
        if not isinstance(upload, Upload):
            raise TypeError("an upload of another blob store")
        self._crash("after_commit")
        if upload.inline is not None:
            return  # committed with the row: nothing to move
        try:
            with contextlib.suppress(FileNotFoundError):
                os.replace(upload.temp, self.path(upload.key))
        finally:
            upload.release()

    def discard(self, upload: Upload | PgUpload) -> None:
        if not isinstance(upload, Upload):
            raise TypeError("an upload of another blob store")
        if upload.inline is not None:
            return  # never left memory
        try:
            upload.temp.unlink(missing_ok=True)
        finally:
            upload.release()
        remove_dir_if_empty(upload.temp.parent)

    def open(self, key: str) -> BinaryIO:
        """Open the published blob of ``key``, which a message row references.

        The open handle survives a later unlink, so a fetch that began before a
        concurrent handover still streams a whole envelope. If only the temp file is
        there (the process that committed died before its rename), it is published
        here: a referenced temp file is whole (fsync'd before the commit), so the
        recipient gets the message at once instead of "not available".
        """
        final = self.path(key)
        try:
            return open(final, "rb")
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.temp_path(key), final)
        return open(final, "rb")

    async def open_reader(self, key: str) -> BinaryIO:
        return await asyncio.to_thread(self.open, key)

    def notify_wiped(self) -> None:
        """Inline envelope bytes were deleted outside a unit of work (an ORM path)."""
        if self.on_wiped is not None:
            self.on_wiped()

    async def sweep(self, sessionmaker: SessionMaker, *, now: float | None = None) -> int:
        from gateway.recovery import sweep_orphan_blobs  # recovery builds on this module

        return await sweep_orphan_blobs(self.root, sessionmaker, now=now)

    async def drain(self) -> None:
        """Nothing runs in the background here (the PostgreSQL store's discards do)."""

    async def aclose(self) -> None:
        """Nothing to close (the PostgreSQL store has a reader pool)."""

    def content_paths(self, key: str) -> list[Path]:
        """What to remove when the message ends: the temp name before the final one (a
        concurrent publish renames temp → final, so this order never misses the file),
        then the message's directory with whatever else is in it (see
        :func:`unlink_all`)."""
        return [self.temp_path(key), self.path(key), self.message_dir(key)]

    def _crash(self, point: str) -> None:
        # Test mode only (Settings.test_crash_at refuses it otherwise): the windows
        # around the commit, reproducible in a crash test.
        if self._crash_at == point:
            log.warning("test mode: killing the gateway at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)


def _create_locked(temp: Path) -> int:
    # The message directory may be removed by a concurrent end or sweep between the
    # mkdir and the open: try again (an end of a message that is being uploaded again
    # only happens with retries, and a sweep only removes empty directories).
    for _ in range(5):
        temp.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            continue
        # Before the first byte: a sweeper that can take this lock knows the owner is
        # gone (file descriptors, and with them the locks, die with the process).
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd
    raise OSError(f"could not create an upload file in {temp.parent.name}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_and_sync(fd: int, data: bytes, directory: Path) -> None:
    _write_all(fd, data)
    os.fsync(fd)
    fsync_path(directory)
    fsync_path(directory.parent)


def remove_dir_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (another upload), or already gone
        directory.rmdir()


def unlink_all(paths: Iterable[Path]) -> None:
    """Remove files (and message directories with every file in them) after a commit.
    A failure is logged, not raised: the row is already gone, so the file is an orphan
    that ``gateway.recovery`` removes later."""
    for path in paths:
        try:
            if path.is_dir():
                _remove_message_dir(path)
            else:
                path.unlink(missing_ok=True)
        except OSError:
            log.exception("could not remove blob %s; left for the sweeper", path.name)


def _remove_message_dir(directory: Path) -> None:
    # Temp files first, for the same reason as in content_paths. A locked temp file is a
    # retry of an ended message still streaming: it finds the row and discards itself
    # (its bytes then live only in an unlinked file held by that request).
    names = sorted(os.listdir(directory), key=lambda n: not n.endswith(".part"))
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    remove_dir_if_empty(directory)

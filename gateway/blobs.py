"""Envelope bodies on disk: streamed in, published only when accepted, deleted at once.

Layout: one flat directory (``settings.blobs``). A blob is named by a random key
(never the message id: a refused upload and a retry must not share a path). While an
upload streams it lives in ``.<key>.part``; it is renamed to ``<key>`` only after the
envelope was accepted and the database commit succeeded, and unlinked on refusal.

Threats: a half-written upload served as an envelope (temp name until accepted, fsync
before commit); memory exhaustion by a large body (64 KiB chunks, never whole in
memory); content outliving its deletion (``destroy_content`` returns the paths to
unlink after commit, and :func:`sweep_orphan_blobs` removes anything a crash left);
another local user reading blobs (0700 directory, 0600 files).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import web
from sqlalchemy import select

from gateway.db.engine import SessionMaker
from gateway.db.models import MessageRow
from keys.canonical import Hasher

log = logging.getLogger(__name__)

# Hash of the whole upload as received: answers "is this retry byte-identical?" for
# idempotent sends. Gateway-internal; the person keeps it apart from every other hash.
UPLOAD_HASH_PERSON = b"stafett.envelope"
READ_CHUNK = 64 * 1024
_KEY = re.compile(r"^[0-9a-f]{32}$")
_PART = re.compile(r"^\.([0-9a-f]{32})\.part$")
# An upload still streaming must not be swept: temp files younger than this are left.
DEFAULT_SWEEP_GRACE_S = 3600


@dataclass(frozen=True)
class Upload:
    """A fully received upload in its temp file (not yet trusted or published)."""

    key: str
    temp: Path
    size: int
    upload_hash: str  # hex


class BlobStore:
    """The blob directory. Cheap to construct; the directory is made on first write."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        # Keys come from our own database, but a path is only built from a checked
        # key so a corrupted row can never point outside the blob directory.
        if not _KEY.fullmatch(key):
            raise ValueError("malformed blob key")
        return self.root / key

    def temp_path(self, key: str) -> Path:
        return self.root / f".{self.path(key).name}.part"

    async def receive(self, chunks: AsyncIterator[bytes]) -> Upload:
        """Stream ``chunks`` into a new temp file, hashing as it goes; fsync at the end.

        On any error (size limit, digest mismatch, disconnect) the temp file is removed
        and the error propagates.
        """
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_hex(16)
        temp = self.temp_path(key)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        hasher = Hasher(UPLOAD_HASH_PERSON)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    out.write(chunk)
                    hasher.update(chunk)
                    size += len(chunk)
                out.flush()
                # Accepted means kept: the sender is told 201 only for bytes on disk.
                await asyncio.to_thread(os.fsync, out.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return Upload(key=key, temp=temp, size=size, upload_hash=hasher.digest().hex())

    def publish(self, upload: Upload) -> None:
        """Rename an accepted upload into place (after the database commit)."""
        os.replace(upload.temp, self.path(upload.key))

    def discard(self, upload: Upload) -> None:
        upload.temp.unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        """Open a published blob. The open handle survives a later unlink, so a fetch
        that began before a concurrent handover still streams a whole envelope."""
        return open(self.path(key), "rb")

    def content_paths(self, key: str) -> list[Path]:
        """Every path a blob may occupy (published, or temp if publish never happened)."""
        return [self.path(key), self.temp_path(key)]


def unlink_all(paths: Iterable[Path]) -> None:
    """Unlink files after a commit. A failure is logged, not raised: the row is already
    gone, so the file is an orphan that :func:`sweep_orphan_blobs` removes later."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            log.exception("could not unlink blob %s; left for the sweeper", path.name)


async def stream_blob(handle: BinaryIO, response: web.StreamResponse) -> None:
    """Write an open blob to a prepared response, one chunk at a time."""
    with handle:
        while True:
            chunk = await asyncio.to_thread(handle.read, READ_CHUNK)
            if not chunk:
                break
            await response.write(chunk)


async def sweep_orphan_blobs(
    blob_dir: Path,
    sessionmaker: SessionMaker,
    *,
    now: float | None = None,
    grace_s: int = DEFAULT_SWEEP_GRACE_S,
) -> int:
    """Remove blob files no message row references; returns how many were removed.

    - ``<key>`` with no row holding ``blob_key = key``: content whose row was deleted
      (handover, expiry, …) but whose unlink failed — removed.
    - ``.<key>.part`` older than ``grace_s``: if a row references the key, the commit
      happened and the rename did not (a crash in between) — renamed into place;
      otherwise a refused or abandoned upload — removed. Younger temp files may be
      uploads in progress and are left alone.
    Safe on several instances at once: every file operation tolerates a file that a
    concurrent sweeper or request already moved.
    """
    names = await asyncio.to_thread(_list_files, blob_dir)
    keys = {n for n in names if _KEY.fullmatch(n)}
    parts: dict[str, str] = {}
    for name in names:
        match = _PART.fullmatch(name)
        if match:
            parts[match.group(1)] = name
    if not keys and not parts:
        return 0
    referenced = await _referenced(sessionmaker, keys | set(parts))
    clock = now if now is not None else time.time()
    return await asyncio.to_thread(
        _remove_orphans, BlobStore(blob_dir), keys - referenced, parts, referenced, clock, grace_s
    )


def _list_files(blob_dir: Path) -> list[str]:
    if not blob_dir.is_dir():
        return []
    return [entry.name for entry in os.scandir(blob_dir) if entry.is_file()]


def _remove_orphans(
    store: BlobStore,
    orphans: set[str],
    parts: dict[str, str],
    referenced: set[str],
    clock: float,
    grace_s: int,
) -> int:
    removed = 0
    for key in orphans:
        with contextlib.suppress(FileNotFoundError):
            store.path(key).unlink()
            removed += 1
    for key, name in parts.items():
        path = store.root / name
        try:
            age = clock - path.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < grace_s:
            continue
        with contextlib.suppress(FileNotFoundError):
            if key in referenced:
                os.replace(path, store.path(key))
            else:
                path.unlink()
                removed += 1
    return removed


async def _referenced(sessionmaker: SessionMaker, keys: set[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(keys)
    async with sessionmaker() as session:
        for start in range(0, len(ordered), 500):
            batch = ordered[start : start + 500]
            rows = await session.scalars(
                select(MessageRow.blob_key).where(MessageRow.blob_key.in_(batch))
            )
            found.update(k for k in rows if k is not None)
    return found

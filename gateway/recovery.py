"""What a crash left in the blob directory, resolved against the database.

Runs once at start-up, before the gateway serves (``recover_uploads``, a
``cleanup_ctx``), and hourly as the ``sweep_orphan_blobs`` job. The rule it applies is
the one ``gateway.blobs`` explains: a temp file is touched only when its lock can be
taken (its owner is dead — on this instance or any other sharing the directory), then
published if a message row references it and destroyed otherwise; a published file no
row references is destroyed. So after a kill at any moment of an upload, a restart
leaves every accepted message collectable and no copy of an envelope that was not
accepted, and an upload streaming on another instance is never disturbed.

Why a lock and not "host + pid" or an age: the kernel drops a dead process's locks
(also on SIGKILL), which no pid check across containers or pid reuse can promise, and
an age rule would leave an accepted message unreachable, or a refused envelope on disk,
for its whole grace period. The lock needs a filesystem whose locks work between the
instances that share it (local disks; NFSv4); the deploy notes say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gateway.appkeys import BLOBS, SESSIONMAKER
from gateway.blobs import HEX32, PART, BlobStore, remove_dir_if_empty
from gateway.db import message_store
from gateway.db.engine import SessionMaker
from gateway.db.units import SqliteUnits

log = logging.getLogger("gateway.recovery")

# An empty temp file may be an upload between its creation and its lock (it writes
# only under the lock): it holds no content, and only one this old is taken.
EMPTY_PART_GRACE_S = 3600


async def recover_uploads(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the database ctx): resolve interrupted uploads before serving."""
    try:
        removed = await app[BLOBS].sweep(app[SESSIONMAKER])
    except Exception as exc:
        # The hourly sweep and the fetch path repair the same later; not serving at
        # all would strand every message instead. Class only: the text may hold SQL.
        log.error("could not resolve interrupted uploads (%s)", type(exc).__qualname__)
    else:
        if removed:
            log.info("removed %d files of interrupted or ended uploads", removed)
    units = app[SESSIONMAKER].units
    if isinstance(units, SqliteUnits):
        # A killed gateway leaves its WAL, with older page images of envelopes kept in
        # the database that were handed over before the kill: dropped before serving.
        try:
            await units.scrub_wal()
        except Exception as exc:
            log.error("could not truncate the database's WAL (%s)", type(exc).__qualname__)
    yield


async def sweep_orphan_blobs(
    blob_dir: Path, sessionmaker: SessionMaker, *, now: float | None = None
) -> int:
    """Resolve every file no live upload owns against the database; returns how many
    files were removed.

    - ``<r>`` whose key no message row holds: content of a message that ended but whose
      removal failed — removed.
    - ``.<r>.part`` with bytes whose lock can be taken (its owner is dead): published if
      a row holds its key (the commit happened, the rename did not), removed otherwise.
      A locked one is an upload in flight on some instance: left alone. An empty one
      holds nothing and is removed once older than ``EMPTY_PART_GRACE_S``.
    - empty message directories — removed.

    Safe at any time and on several instances at once. The database is asked only after
    the files were listed and the temp files' locks taken: a final file published after
    the listing is not seen, one published before it is referenced by a committed row;
    a temp file's owner is dead once its lock is ours, so its commit either happened
    before the question or never will. Every file operation tolerates a file that a
    concurrent sweeper or request already moved.
    """
    found = await asyncio.to_thread(_list_blobs, blob_dir)
    if not found:
        return 0
    store = BlobStore(blob_dir)
    clock = now if now is not None else time.time()
    finals = [key for key, is_temp in found if not is_temp]
    claimed = await asyncio.to_thread(
        _claim_abandoned, store, [key for key, is_temp in found if is_temp], clock
    )
    try:
        referenced = await _referenced(sessionmaker, set(finals) | set(claimed))
        return await asyncio.to_thread(_resolve, store, finals, list(claimed), referenced)
    finally:
        for fd in claimed.values():
            os.close(fd)


def _list_blobs(blob_dir: Path) -> list[tuple[str, bool]]:
    """(key, is_temp) of every blob file; empty message directories are removed."""
    if not blob_dir.is_dir():
        return []
    found: list[tuple[str, bool]] = []
    for entry in os.scandir(blob_dir):
        if not (entry.is_dir(follow_symlinks=False) and HEX32.fullmatch(entry.name)):
            continue
        try:
            names = os.listdir(entry.path)
        except FileNotFoundError:
            continue  # removed since the scan (a message ended)
        if not names:
            remove_dir_if_empty(Path(entry.path))
        for name in names:
            part = PART.fullmatch(name)
            if part:
                found.append((f"{entry.name}/{part.group(1)}", True))
            elif HEX32.fullmatch(name):
                found.append((f"{entry.name}/{name}", False))
    return found


def _claim_abandoned(store: BlobStore, temps: list[str], clock: float) -> dict[str, int]:
    """Lock every temp file whose owner is gone; key → the open, locked descriptor."""
    claimed: dict[str, int] = {}
    for key in temps:
        try:
            fd = os.open(store.temp_path(key), os.O_RDONLY)
        except FileNotFoundError:
            continue  # published or discarded since the listing
        taken = False
        try:
            stat = os.fstat(fd)
            # Empty: perhaps created and not yet locked by a live upload (it writes only
            # under its lock), so only an old one is taken.
            if stat.st_size > 0 or clock - stat.st_mtime >= EMPTY_PART_GRACE_S:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken = True
        except BlockingIOError:
            pass  # an upload in flight, here or on another instance
        finally:
            if taken:
                claimed[key] = fd
            else:
                os.close(fd)
    return claimed


def _resolve(store: BlobStore, finals: list[str], temps: list[str], referenced: set[str]) -> int:
    removed = 0
    for key in finals:
        if key not in referenced:
            with contextlib.suppress(FileNotFoundError):
                store.path(key).unlink()
                removed += 1
    for key in temps:
        with contextlib.suppress(FileNotFoundError):
            if key in referenced:
                os.replace(store.temp_path(key), store.path(key))
            else:
                store.temp_path(key).unlink()
                removed += 1
    for key in {*finals, *temps} - referenced:
        remove_dir_if_empty(store.message_dir(key))
    return removed


async def _referenced(sessionmaker: SessionMaker, keys: set[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(keys)
    async with sessionmaker() as session:
        for start in range(0, len(ordered), 500):
            batch = ordered[start : start + 500]
            found |= await message_store.referenced_blob_keys(session, batch)
    return found

"""The gateway's verified copy of the key directory, kept in step with the database.

The database is the source of truth (several instances share it); each instance holds a
``keys.protocol.directory.Directory`` built by verifying every stored entry from the pinned root
admins. Threat: a row edited in the database (or by a buggy instance) that does not
verify is never trusted: replaying it fails and the instance refuses to serve auth.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import audit_trail as audit
from gateway.db import directory_store
from gateway.db.engine import SessionMaker
from gateway.services.exposure import expose_revoked
from keys.crypto.canonical import canonical_json
from keys.crypto.keypairs import KeyId, VerifyKey
from keys.errors import DirectoryEntryInvalid
from keys.protocol.directory import Directory, DirectoryEntry
from keys.protocol.problems import FieldInvalid, InternalError

log = logging.getLogger(__name__)

MAX_ENTRIES_PER_POST = 1000
_LOAD_BATCH = 1000


class DirectoryService:
    def __init__(self, pinned_admins: Mapping[str, VerifyKey]) -> None:
        self._pinned = dict(pinned_admins)
        self._directory = Directory(self._pinned)
        self._lock = asyncio.Lock()

    @property
    def directory(self) -> Directory:
        """The verified state as of the last refresh (never mutated in place)."""
        return self._directory

    async def refresh(self, session: AsyncSession) -> Directory:
        """Catch up with entries other instances stored. One ``max(seq)`` when current."""
        stored = await directory_store.stored_size(session)
        if stored == self._directory.size:
            return self._directory
        async with self._lock:
            current = self._directory
            if stored < current.size:
                # The table shrank (a restored backup): start again from the pins.
                log.warning("directory table is shorter than the verified copy; rebuilding")
                current = Directory(self._pinned)
            if stored > current.size:
                current = await self._load(session, current.copy(), stored)
            self._directory = current
        return self._directory

    async def catch_up(self, sessionmaker: SessionMaker) -> Directory:
        """:meth:`refresh` in a read of its own (a unit of work found the table moved)."""
        async with sessionmaker() as session:
            return await self.refresh(session)

    async def _load(self, session: AsyncSession, target: Directory, stored: int) -> Directory:
        while target.size < stored:
            batch = await directory_store.entries_from(session, target.size, _LOAD_BATCH)
            if not batch:
                break
            for body in batch:
                try:
                    target.append(DirectoryEntry.from_json(json.loads(body)))
                except Exception:
                    log.error("stored directory entry %d does not verify", target.size)
                    raise InternalError() from None
        return target

    async def append(
        self, sessionmaker: SessionMaker, raw_entries: Sequence[Any], *, caller: KeyId, now: int
    ) -> Directory:
        """Verify and store ``raw_entries`` all-or-nothing; returns the new state.

        Each entry is checked by ``Directory.append`` (chain, admin signature, state
        rules) on a copy; nothing is stored and the served state does not change unless
        every entry verifies and the transaction commits.
        """
        if not isinstance(raw_entries, list) or not 1 <= len(raw_entries) <= MAX_ENTRIES_PER_POST:
            raise FieldInvalid(f"entries must be a list of 1 to {MAX_ENTRIES_PER_POST} entries")
        parsed = [DirectoryEntry.from_json(raw) for raw in raw_entries]
        async with sessionmaker.begin() as session:
            # Two instances appending on the same head would both verify; the lock
            # makes the second one see the first one's entries (and refuse a fork).
            await directory_store.lock_for_append(session)
            base = await self.refresh(session)
            candidate = base.copy()
            rows = []
            for entry in parsed:
                candidate.append(entry)  # raises a keys.errors.DirectoryError, nothing stored
                rows.append((entry.seq, entry.hash().hex(), canonical_json(entry.to_json())))
            if not rows:
                raise DirectoryEntryInvalid("no entries")
            await directory_store.insert_entries(
                session, [(s, h, j.decode("utf-8")) for s, h, j in rows]
            )
            await audit.record(
                session,
                "directory_appended",
                now=now,
                admin=str(caller),
                first_seq=parsed[0].seq,
                count=len(parsed),
                types=[e.type for e in parsed],
                head=candidate.head.hex(),
            )
            # A revocation and the exposure notices it causes commit together.
            await expose_revoked(session, candidate, parsed, now=now)
        async with self._lock:
            if candidate.size > self._directory.size:
                self._directory = candidate
        return candidate

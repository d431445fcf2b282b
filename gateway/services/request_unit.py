"""A request's unit of work: its nonce, the directory check and its decision, committed
together (``gateway.db.units``; issue 13).

Before, each request paid for a transaction of its own in the authentication
middleware (the nonce and a directory read) before the handler's transaction. Now the
handover requests carry their nonce into the unit that decides them, and the unit
checks that the directory the decision uses is the one committed (a generation check:
the stored size against the size of the verified copy held in memory). When another
process appended to the directory meanwhile — a revocation, a rotation — the unit is
undone, the copy catches up, the caller's key is checked again against it, and the unit
runs again: the decision is taken against the directory as committed, never an older
one.

Threat: a replayed request, or a request of a device revoked a moment ago elsewhere,
having an effect. The nonce insert is the unit's first statement, so a replay changes
nothing; the directory check is in the same transaction as the decision (on PostgreSQL
under the shared advisory lock that appends take exclusively).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from gateway.caller import Caller, require_active_key
from gateway.db import handover_store
from gateway.db.engine import SessionMaker
from gateway.db.units import Tx
from gateway.services.directory import DirectoryService
from keys.protocol.directory import Directory
from keys.protocol.problems import Replayed, ServiceUnavailable, SignatureExpired

T = TypeVar("T")

# Appends racing the same request this many times in a row: answered 503 (retry).
_ATTEMPTS = 4


class _DirectoryMoved(Exception):
    """The committed directory is not the verified copy the unit was given."""


def claim_nonce(tx: Tx, caller: Caller) -> None:
    """Store the caller's pending nonce in this unit (``replayed`` if it is known)."""
    pending = caller.nonce
    if pending is None or pending.stored:
        return
    if time.time() > pending.decide_by:
        # Threat: a replay that arrived in time and streamed its body slowly until the
        # original's nonce was purged. What is decided this late may no longer be
        # checked against earlier uses of the nonce: refused, the sender signs anew.
        raise SignatureExpired("the request's signature expired while its body arrived")
    if not handover_store.claim_nonce(tx.conn, pending.keyid, pending.nonce, pending.created):
        raise Replayed()


async def write_unit(
    sessionmaker: SessionMaker,
    caller: Caller,
    directory: Directory,
    work: Callable[[Tx, Directory], T],
    *,
    directories: DirectoryService | None = None,
) -> T:
    """Run ``work(tx, directory)`` as the request's unit of work (module docstring).

    ``directories``: the instance's directory service; with it the unit checks the
    generation (on PostgreSQL under the shared advisory lock that appends take
    exclusively, so no append commits before this unit does) and catches up when it
    moved. The caller's key is checked against the directory the decision uses.
    """
    current = directory
    for _ in range(_ATTEMPTS):

        def unit(tx: Tx, current: Directory = current) -> T:
            claim_nonce(tx, caller)
            if directories is not None:
                stored = handover_store.directory_size(tx.conn, hold=True)
                if stored != current.size:
                    raise _DirectoryMoved()
            if caller.device is not None:
                # Against the directory the decision uses, whatever authentication saw:
                # a revocation stored by this instance while the request's body arrived
                # replaced the copy in memory (a dict lookup, every attempt).
                require_active_key(current, caller.kid)
            return work(tx, current)

        try:
            result = await sessionmaker.units.write(unit)
        except _DirectoryMoved:
            if directories is None:  # pragma: no cover - only raised with directories
                raise
            current = await directories.catch_up(sessionmaker)
            continue
        if caller.nonce is not None:
            caller.nonce.stored = True
        return result
    raise ServiceUnavailable("the key directory is being changed; try again")

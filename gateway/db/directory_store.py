"""SQL for the key directory log (``directory_entries``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import DirectoryEntryRow

DIRECTORY_LOCK_ID = _DIRECTORY_LOCK_ID = (
    0x5354_4146_4449  # "STAF" "DI": advisory lock for appends (PostgreSQL)
)


async def lock_for_append(session: AsyncSession) -> None:
    """PostgreSQL: the exclusive advisory lock of appends until the transaction ends,
    against the shared one a unit of work takes (``handover_store.directory_size``).
    (SQLite: a no-op; the transaction holds the single write lock from its start.)"""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _DIRECTORY_LOCK_ID})


async def stored_size(session: AsyncSession) -> int:
    """Number of stored entries (entries are 0-based and gap-free, so max(seq) + 1)."""
    top = await session.scalar(select(func.max(DirectoryEntryRow.seq)))
    return 0 if top is None else int(top) + 1


async def entries_from(session: AsyncSession, first: int, limit: int) -> list[str]:
    """Canonical JSON of entries with ``seq >= first``, ascending, at most ``limit``."""
    rows = await session.scalars(
        select(DirectoryEntryRow.body_json)
        .where(DirectoryEntryRow.seq >= first)
        .order_by(DirectoryEntryRow.seq)
        .limit(limit)
    )
    return list(rows)


async def insert_entries(session: AsyncSession, rows: Sequence[tuple[int, str, str]]) -> None:
    """Insert ``(seq, hash_hex, canonical_json)`` rows. The seq primary key refuses a
    concurrent writer that verified against the same head (a fork) at commit."""
    session.add_all(DirectoryEntryRow(seq=s, hash=h, body_json=j) for s, h, j in rows)
    await session.flush()

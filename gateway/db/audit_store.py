"""SQL for the audit chain and its checkpoints."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import AuditCheckpointRow, AuditEntryRow

# Arbitrary constant identifying "the audit chain" among advisory locks.
AUDIT_LOCK_ID = _AUDIT_LOCK_ID = 0x5354_4146_4155  # "STAF" "AU"


async def lock_chain(session: AsyncSession) -> None:
    """Serialise appends to the chain until this transaction ends.

    Threat: two instances reading the same head and both appending seq n+1 would fork
    the chain (one insert fails at best, a lost audit entry at worst). PostgreSQL: a
    transaction-scoped advisory lock. SQLite: every transaction already starts with
    BEGIN IMMEDIATE (gateway.db.engine), which holds the single write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK_ID})


async def head(session: AsyncSession) -> tuple[int, str | None]:
    """(size, hash hex of the last entry or None when empty)."""
    row = (
        await session.execute(
            select(AuditEntryRow.seq, AuditEntryRow.hash)
            .order_by(AuditEntryRow.seq.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return 0, None
    return int(row[0]) + 1, str(row[1])


async def entries_from(session: AsyncSession, first: int, limit: int) -> list[AuditEntryRow]:
    rows = await session.scalars(
        select(AuditEntryRow)
        .where(AuditEntryRow.seq >= first)
        .order_by(AuditEntryRow.seq)
        .limit(limit)
    )
    return list(rows)


async def latest_checkpoint(session: AsyncSession) -> AuditCheckpointRow | None:
    return await session.scalar(
        select(AuditCheckpointRow).order_by(AuditCheckpointRow.size.desc()).limit(1)
    )


async def insert_checkpoint(session: AsyncSession, row: AuditCheckpointRow) -> None:
    session.add(row)
    await session.flush()


async def key_rotations(session: AsyncSession) -> list[tuple[AuditEntryRow, AuditCheckpointRow]]:
    """Every ``gateway_key_rotated`` entry with the checkpoint that covers exactly it
    (size = its seq + 1: the one ``stafett-gateway identity rotate`` signed with the
    previous key in the same transaction). An entry without that checkpoint is left out.

    A scan of the chain by event; the caller runs it once per process (the key set of
    a running instance does not change).
    """
    entries = await session.scalars(
        select(AuditEntryRow)
        .where(AuditEntryRow.event == "gateway_key_rotated")
        .order_by(AuditEntryRow.seq)
    )
    out = []
    for entry in entries:
        checkpoint = await session.get(AuditCheckpointRow, entry.seq + 1)
        if checkpoint is not None:
            out.append((entry, checkpoint))
    return out

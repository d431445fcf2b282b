"""SQL for consents (``consents``, ``consent_parties``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import ConsentParty, ConsentRow

Lock = Literal["share", "update"] | None


async def get(session: AsyncSession, consent_id: str, *, lock: Lock = None) -> ConsentRow | None:
    """One consent. ``lock="share"`` (a send deciding under it) and ``lock="update"``
    (a withdrawal) order the two on PostgreSQL: a send that read the consent as active
    commits before the withdrawal scans pending messages, or reads it withdrawn.
    (SQLite: every transaction holds the single write lock from its start.)"""
    query = select(ConsentRow).where(ConsentRow.id == consent_id)
    if lock == "share":
        query = query.with_for_update(read=True)
    elif lock == "update":
        query = query.with_for_update()
    return (await session.scalars(query)).first()


async def parties(session: AsyncSession, consent_id: str) -> frozenset[str]:
    rows = await session.scalars(
        select(ConsentParty.unit).where(ConsentParty.consent_id == consent_id)
    )
    return frozenset(rows)


async def insert(session: AsyncSession, row: ConsentRow, units: Iterable[str]) -> None:
    session.add(row)
    await session.flush()
    session.add_all(ConsentParty(consent_id=row.id, unit=u) for u in sorted(set(units)))
    await session.flush()


async def for_subject(session: AsyncSession, subject_ref: str, unit: str) -> list[ConsentRow]:
    """Consents about ``subject_ref`` where ``unit`` is a party (others are not listed:
    that a person has a consent with, say, the police is itself sensitive)."""
    rows = await session.scalars(
        select(ConsentRow)
        .join(ConsentParty, ConsentParty.consent_id == ConsentRow.id)
        .where(ConsentRow.subject_ref == subject_ref, ConsentParty.unit == unit)
        .order_by(ConsentRow.created_at, ConsentRow.id)
    )
    return list(rows)


async def mark_withdrawn(
    session: AsyncSession, consent_id: str, *, withdrawn_at: int, reason: str
) -> bool:
    """Record the withdrawal unless one is recorded already (conditional: two instances
    withdrawing at once leave the first withdrawal in place)."""
    result = await session.execute(
        update(ConsentRow)
        .where(ConsentRow.id == consent_id, ConsentRow.withdrawn_at.is_(None))
        .values(withdrawn_at=withdrawn_at, withdrawal_reason=reason)
    )
    return bool(getattr(result, "rowcount", 0))

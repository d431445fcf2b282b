"""SQL for the deadline jobs: overdue messages, consents ending soon, and the markers.

The markers (``messages.escalated_at``, ``consents.reminded_at``) are set with a
conditional update that only touches a row whose marker is still empty. A job emits and
audits only when that update touched the row, in the same transaction: two gateway
instances never both notify, and a crash before the commit leaves the marker empty, so
the run after the restart does it (at least once, and never twice).
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import ConsentRow, MessageRow
from keys.domain.lifecycle import PENDING

PENDING_STATES = tuple(str(s) for s in PENDING)


async def overdue_messages(
    session: AsyncSession, *, now: int, limit: int, exclude: Collection[str] = ()
) -> list[MessageRow]:
    """Pending, unexpired messages whose due time passed and that were not escalated,
    oldest due first, locked for this transaction.

    SKIP LOCKED (PostgreSQL): a row another instance, a receipt or a recall holds is
    left to it; the next run sees its outcome. An expired message is left to the expiry
    job, whose "not handed over" notice supersedes an escalation.
    """
    query = (
        select(MessageRow)
        .where(
            MessageRow.state.in_(PENDING_STATES),
            MessageRow.due.is_not(None),
            MessageRow.due <= now,  # inclusive, like expiry
            MessageRow.escalated_at.is_(None),
            MessageRow.expires > now,
        )
        .order_by(MessageRow.due, MessageRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if exclude:
        query = query.where(MessageRow.id.not_in(list(exclude)))
    return list(await session.scalars(query))


async def mark_escalated(session: AsyncSession, message_id: str, *, now: int) -> bool:
    """Claim the escalation of one message; False if it was escalated or ended first."""
    result = await session.execute(
        update(MessageRow)
        .where(
            MessageRow.id == message_id,
            MessageRow.escalated_at.is_(None),
            MessageRow.state.in_(PENDING_STATES),
        )
        .values(escalated_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


async def consents_ending(
    session: AsyncSession, *, now: int, until: int, limit: int, exclude: Collection[str] = ()
) -> list[ConsentRow]:
    """Running, unwithdrawn, unreminded consents ending in ``(now, until]``, soonest
    first, locked for this transaction (SKIP LOCKED, as above)."""
    query = (
        select(ConsentRow)
        .where(
            ConsentRow.withdrawn_at.is_(None),
            ConsentRow.reminded_at.is_(None),
            ConsentRow.valid_until > now,
            ConsentRow.valid_until <= until,
        )
        .order_by(ConsentRow.valid_until, ConsentRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if exclude:
        query = query.where(ConsentRow.id.not_in(list(exclude)))
    return list(await session.scalars(query))


async def mark_reminded(session: AsyncSession, consent_id: str, *, now: int) -> bool:
    """Claim the reminder of one consent; False if it was reminded or withdrawn first."""
    result = await session.execute(
        update(ConsentRow)
        .where(
            ConsentRow.id == consent_id,
            ConsentRow.reminded_at.is_(None),
            ConsentRow.withdrawn_at.is_(None),
        )
        .values(reminded_at=now)
    )
    return bool(getattr(result, "rowcount", 0))

"""SQL for the per-device event log (``events``): the push stream and the webhook queue
read it; ``gateway.services.events`` decides what goes in."""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import EventRow, MessageRow


async def for_unit(session: AsyncSession, *, unit: str, after: int, limit: int) -> list[EventRow]:
    """Events of any device of ``unit`` with seq > ``after``, ascending, at most ``limit``."""
    rows = await session.scalars(
        select(EventRow)
        .where(EventRow.unit == unit, EventRow.seq > after)
        .order_by(EventRow.seq)
        .limit(limit)
    )
    return list(rows)


async def last_seq(session: AsyncSession) -> int:
    """The highest seq of any device (0 when none)."""
    value = await session.scalar(select(func.max(EventRow.seq)))
    return int(value or 0)


async def devices_after(session: AsyncSession, *, after: int, upto: int) -> list[tuple[int, str]]:
    """(seq, device) of the events in ``after < seq <= upto``."""
    rows = await session.execute(
        select(EventRow.seq, EventRow.device).where(EventRow.seq > after, EventRow.seq <= upto)
    )
    return [(int(seq), str(device)) for seq, device in rows if device is not None]


async def delete_consumed(session: AsyncSession, *, before: int, ended_states: list[str]) -> int:
    """Delete events created at or before ``before`` that are about no message or about
    a message in one of ``ended_states``; returns how many."""
    ended = select(MessageRow.id).where(MessageRow.state.in_(ended_states))
    result = await session.execute(
        delete(EventRow)
        .where(
            EventRow.created <= before,
            or_(EventRow.message_id.is_(None), EventRow.message_id.in_(ended)),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)

"""SQL for webhooks and their delivery queue (``webhooks``, ``webhook_deliveries``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import EventRow, WebhookDeliveryRow, WebhookRow


async def count_for_unit(session: AsyncSession, unit: str) -> int:
    count = await session.scalar(
        select(func.count()).select_from(WebhookRow).where(WebhookRow.unit == unit)
    )
    return int(count or 0)


def add(session: AsyncSession, row: WebhookRow | WebhookDeliveryRow) -> None:
    """Add a webhook or a delivery row; written with the transaction's next flush."""
    session.add(row)


async def get(session: AsyncSession, webhook_id: str) -> WebhookRow | None:
    return await session.get(WebhookRow, webhook_id)


async def for_unit(session: AsyncSession, unit: str) -> list[WebhookRow]:
    rows = await session.scalars(
        select(WebhookRow).where(WebhookRow.unit == unit).order_by(WebhookRow.created)
    )
    return list(rows)


async def failed_count(session: AsyncSession, webhook_id: str) -> int:
    failed = await session.scalar(
        select(func.count())
        .select_from(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.webhook_id == webhook_id, WebhookDeliveryRow.state == "failed")
    )
    return int(failed or 0)


async def remove(session: AsyncSession, row: WebhookRow) -> None:
    """Delete a webhook and its deliveries."""
    await session.execute(delete(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook_id == row.id))
    await session.delete(row)


async def deliveries(
    session: AsyncSession, webhook_id: str, state: str | None, *, limit: int
) -> list[WebhookDeliveryRow]:
    """Deliveries of one webhook (of one ``state`` unless None), oldest first."""
    query = select(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook_id == webhook_id)
    if state is not None:
        query = query.where(WebhookDeliveryRow.state == state)
    return list(await session.scalars(query.order_by(WebhookDeliveryRow.id).limit(limit)))


async def all_ids(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(WebhookRow.id)))


async def get_locked(session: AsyncSession, webhook_id: str) -> WebhookRow | None:
    """One webhook, row-locked until the transaction ends on PostgreSQL (SQLite has one
    writer): two instances enqueueing for it take turns on its cursor."""
    query = select(WebhookRow).where(WebhookRow.id == webhook_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return await session.scalar(query)


async def delivery_exists(session: AsyncSession, webhook_id: str, dedupe: str) -> bool:
    found = await session.scalar(
        select(WebhookDeliveryRow.id).where(
            WebhookDeliveryRow.webhook_id == webhook_id, WebhookDeliveryRow.dedupe == dedupe
        )
    )
    return found is not None


async def due_deliveries(
    session: AsyncSession, *, now: int, limit: int
) -> list[tuple[WebhookDeliveryRow, WebhookRow, EventRow]]:
    """Pending deliveries that are due and not claimed (or whose claim ran out), with
    their webhook and event; ``FOR UPDATE SKIP LOCKED`` of the delivery rows on
    PostgreSQL, so two instances claim disjoint sets."""
    query = (
        select(WebhookDeliveryRow, WebhookRow, EventRow)
        .join(WebhookRow, WebhookRow.id == WebhookDeliveryRow.webhook_id)
        .join(EventRow, EventRow.seq == WebhookDeliveryRow.event_seq)
        .where(
            WebhookDeliveryRow.state == "pending",
            WebhookDeliveryRow.next_at <= now,
            (WebhookDeliveryRow.claimed_until.is_(None))
            | (WebhookDeliveryRow.claimed_until <= now),
        )
        .order_by(WebhookDeliveryRow.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=WebhookDeliveryRow, skip_locked=True)
    return [(d, w, e) for d, w, e in (await session.execute(query)).all()]


async def update_delivery(session: AsyncSession, delivery_id: int, values: dict[str, Any]) -> None:
    await session.execute(
        update(WebhookDeliveryRow).where(WebhookDeliveryRow.id == delivery_id).values(**values)
    )

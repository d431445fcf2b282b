"""Webhook delivery rows: what retention removes (``gateway.jobs.retention``).

A settled delivery (``delivered`` or ``failed``) holds ids, a state, counts and times:
no content and no subject, but it still says when which unit was told what about which
message. The unit needs it for a while (``GET /v1/webhooks/{id}/deliveries`` shows the
failures to re-fetch by hand); after ``webhook_retention_days`` it goes. Pending rows
are never purged (accepted work is never lost).
"""

from __future__ import annotations

from sqlalchemy import delete, select

from gateway.db.engine import SessionMaker
from gateway.db.models import WebhookDeliveryRow

SETTLED = ("delivered", "failed")


async def purge_settled(sessionmaker: SessionMaker, *, before: int, batch: int) -> int:
    """Delete settled deliveries whose ``done_at`` is at or before ``before``, in batches
    (a short transaction each, so the delivery job is never blocked for long).

    Correct with two instances at once: rows are taken with SKIP LOCKED (PostgreSQL), a
    row being settled by the delivery job is left to the next run, and deleting what is
    already gone deletes nothing.
    """
    total = 0
    while True:
        async with sessionmaker.begin() as session:
            ids = list(
                await session.scalars(
                    select(WebhookDeliveryRow.id)
                    .where(
                        WebhookDeliveryRow.state.in_(SETTLED),
                        WebhookDeliveryRow.done_at <= before,
                    )
                    .order_by(WebhookDeliveryRow.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            if ids:
                await session.execute(
                    delete(WebhookDeliveryRow)
                    .where(WebhookDeliveryRow.id.in_(ids))
                    .execution_options(synchronize_session=False)
                )
        total += len(ids)
        if len(ids) < batch:
            return total

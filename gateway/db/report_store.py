"""SQL for the follow-up figures: refusal counters and the rows ``gateway.report`` reduces.

What leaves this module is already de-identified per row: unit codes, vocabulary codes,
an outcome word, a local month and a duration. No message id, kid, pseudonym, consent
id or exact time is selected (threat: a report row that could be joined back to the
audit trail or a message row, and through it to one person). ``gateway.report`` checks
every field again and refuses anything shaped like an identifier.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import MessageRow, SendRefusalCount
from gateway.report import ReportEvent
from keys.domain.lifecycle import PENDING
from keys.domain.report_period import Period, month_of

UNKNOWN_UNIT = "unknown"
_PENDING = frozenset(str(s) for s in PENDING)


async def count_refusal(
    session: AsyncSession,
    *,
    month: str,
    sender_unit: str,
    recipient_unit: str,
    category: str,
    purpose: str,
    code: str,
) -> None:
    """Add one refused send to its counter (an upsert: concurrent refusals on two
    instances both count, neither fails on the primary key)."""
    values = {
        "month": month,
        "sender_unit": sender_unit,
        "recipient_unit": recipient_unit,
        "category": category,
        "purpose": purpose,
        "code": code,
        "count": 1,
    }
    dialect = session.get_bind().dialect.name
    insert = (
        postgresql.insert(SendRefusalCount)
        if dialect == "postgresql"
        else sqlite.insert(SendRefusalCount)
    )
    statement = insert.values(**values).on_conflict_do_update(
        index_elements=[k for k in values if k != "count"],  # the primary key
        set_={"count": SendRefusalCount.count + 1},
    )
    await session.execute(statement)


def _outcome(state: str) -> str:
    # Delivered but not answered is still pending: the handover has not happened.
    return "pending" if state in _PENDING else state


async def report_events(session: AsyncSession, period: Period) -> list[ReportEvent]:
    """One event per message accepted in ``period`` and one per refused send in it."""
    rows = await session.execute(
        select(
            MessageRow.accepted_at,
            MessageRow.sender_unit,
            MessageRow.recipient_unit,
            MessageRow.category,
            MessageRow.purpose,
            MessageRow.state,
            MessageRow.handed_over_at,
            MessageRow.escalated_at,
        ).where(MessageRow.accepted_at >= period.start, MessageRow.accepted_at < period.end)
    )
    events: list[ReportEvent] = []
    for accepted, sender, recipient, category, purpose, state, handed, escalated in rows:
        outcome = _outcome(str(state))
        seconds = None
        if outcome == "handed_over" and handed is not None:
            seconds = max(0, int(handed) - int(accepted))
        events.append(
            ReportEvent(
                month=month_of(int(accepted)),
                sender_unit=str(sender),
                recipient_unit=str(recipient),
                category=str(category),
                purpose=str(purpose),
                outcome=outcome,
                seconds_to_handover=seconds,
                escalated=escalated is not None,
            )
        )
    refusals = await session.execute(
        select(SendRefusalCount).where(SendRefusalCount.month.in_(list(period.months)))
    )
    for (counter,) in refusals:
        event = ReportEvent(
            month=counter.month,
            sender_unit=counter.sender_unit,
            recipient_unit=counter.recipient_unit,
            category=counter.category,
            purpose=counter.purpose,
            outcome="refused",
            refused_code=counter.code,
        )
        events.extend([event] * int(counter.count))
    return events

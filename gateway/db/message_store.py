"""SQL for messages, their recipients (the content index) and receipts."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import ConsentRow, MessageRecipient, MessageRow, ReceiptRow


async def get(
    session: AsyncSession, message_id: str, *, for_update: bool = False
) -> MessageRow | None:
    query = select(MessageRow).where(MessageRow.id == message_id)
    if for_update:
        # Serialises receipt / recall / withdrawal / expiry of one message across
        # instances (PostgreSQL; SQLite holds one write lock per transaction anyway).
        query = query.with_for_update()
    return (await session.scalars(query)).first()


async def insert(session: AsyncSession, row: MessageRow, recipients: Iterable[str]) -> None:
    session.add(row)
    await session.flush()
    session.add_all(MessageRecipient(message_id=row.id, kid=k) for k in sorted(set(recipients)))
    await session.flush()


async def recipients(session: AsyncSession, message_id: str) -> list[str]:
    rows = await session.scalars(
        select(MessageRecipient.kid)
        .where(MessageRecipient.message_id == message_id)
        .order_by(MessageRecipient.kid)
    )
    return list(rows)


async def set_state(
    session: AsyncSession,
    message_id: str,
    *,
    from_states: Collection[str],
    values: dict[str, Any],
) -> bool:
    """Conditional update: only from one of ``from_states``. False when another
    transaction moved the message first (so it is never processed twice)."""
    result = await session.execute(
        update(MessageRow)
        .where(MessageRow.id == message_id, MessageRow.state.in_(list(from_states)))
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


async def pending_under_consent(
    session: AsyncSession, consent_id: str, states: Collection[str], *, skip_locked: bool = False
) -> list[str]:
    """Ids of pending messages under a consent, locked for update.

    A withdrawal waits for locked rows (a message mid-handover must not stay pending
    under a withdrawn consent); a job that scans passes ``skip_locked``.
    """
    query = (
        select(MessageRow.id)
        .where(MessageRow.consent_id == consent_id, MessageRow.state.in_(list(states)))
        .order_by(MessageRow.id)
        .with_for_update(skip_locked=skip_locked)
    )
    return list(await session.scalars(query))


def _after(cursor: tuple[int, str] | None) -> Any:
    if cursor is None:
        return True
    return tuple_(MessageRow.accepted_at, MessageRow.id) > tuple_(cursor[0], cursor[1])


async def inbox(
    session: AsyncSession,
    kids: Collection[str],
    *,
    states: Collection[str],
    now: int,
    after: tuple[int, str] | None,
    limit: int,
) -> list[MessageRow]:
    """Pending, unexpired messages sealed to one of ``kids`` whose consent is still in
    force (not withdrawn, ``valid_until`` not passed), by (accepted_at, id)."""
    is_recipient = exists().where(
        MessageRecipient.message_id == MessageRow.id, MessageRecipient.kid.in_(list(kids))
    )
    # A consent's end is an end: its messages are not listed even before the job ran.
    consent_in_force = exists().where(
        ConsentRow.id == MessageRow.consent_id,
        ConsentRow.withdrawn_at.is_(None),
        ConsentRow.valid_until > now,
    )
    rows = await session.scalars(
        select(MessageRow)
        .where(
            is_recipient,
            consent_in_force,
            MessageRow.state.in_(list(states)),
            MessageRow.expires > now,
            _after(after),
        )
        .order_by(MessageRow.accepted_at, MessageRow.id)
        .limit(limit)
    )
    return list(rows)


async def outbox(
    session: AsyncSession, kids: Collection[str], *, after: tuple[int, str] | None, limit: int
) -> list[MessageRow]:
    rows = await session.scalars(
        select(MessageRow)
        .where(MessageRow.sender_kid.in_(list(kids)), _after(after))
        .order_by(MessageRow.accepted_at, MessageRow.id)
        .limit(limit)
    )
    return list(rows)


async def insert_receipt(
    session: AsyncSession, message_id: str, receipt_json: str, directory_size: int | None = None
) -> None:
    session.add(
        ReceiptRow(message_id=message_id, receipt_json=receipt_json, directory_size=directory_size)
    )
    await session.flush()


async def receipt_position(session: AsyncSession, message_id: str) -> int | None:
    """The directory size at which the gateway verified the message's receipt."""
    return await session.scalar(
        select(ReceiptRow.directory_size).where(ReceiptRow.message_id == message_id)
    )


async def receipt(session: AsyncSession, message_id: str) -> str | None:
    return await session.scalar(
        select(ReceiptRow.receipt_json).where(ReceiptRow.message_id == message_id)
    )


async def receipts(session: AsyncSession, message_ids: Collection[str]) -> dict[str, str]:
    if not message_ids:
        return {}
    rows = await session.execute(
        select(ReceiptRow.message_id, ReceiptRow.receipt_json).where(
            ReceiptRow.message_id.in_(list(message_ids))
        )
    )
    return {str(m): str(j) for m, j in rows}


async def pending_sealed_to(
    session: AsyncSession, kids: Collection[str], states: Collection[str]
) -> list[str]:
    """Ids of messages in one of ``states`` with a recipient key among ``kids``."""
    if not kids:
        return []
    rows = await session.scalars(
        select(MessageRow.id)
        .where(
            MessageRow.state.in_(list(states)),
            exists().where(
                MessageRecipient.message_id == MessageRow.id,
                MessageRecipient.kid.in_(list(kids)),
            ),
        )
        .order_by(MessageRow.accepted_at, MessageRow.id)
    )
    return list(rows)


async def mark_exposed(
    session: AsyncSession, message_id: str, kids: Collection[str], now: int
) -> list[str]:
    """Mark the recipient rows of ``kids`` (and the message) exposed; returns the kids
    newly marked (none when an earlier revocation already marked them)."""
    newly = list(
        await session.scalars(
            select(MessageRecipient.kid).where(
                MessageRecipient.message_id == message_id,
                MessageRecipient.kid.in_(list(kids)),
                MessageRecipient.exposed_at.is_(None),
            )
        )
    )
    if not newly:
        return []
    await session.execute(
        update(MessageRecipient)
        .where(MessageRecipient.message_id == message_id, MessageRecipient.kid.in_(newly))
        .values(exposed_at=now)
    )
    await session.execute(
        update(MessageRow)
        .where(MessageRow.id == message_id, MessageRow.exposed_at.is_(None))
        .values(exposed_at=now)
    )
    return sorted(newly)


# --- for the jobs, the start-up recovery and the metrics ------------------------------
async def due_for_ending(
    session: AsyncSession,
    *,
    states: Collection[str],
    now: int,
    limit: int,
    exclude: Collection[str],
) -> list[tuple[str, int, int | None]]:
    """Messages in ``states`` whose expiry or whose consent's end passed, locked
    for this transaction: ``(id, expires, the consent's valid_until)``.

    SKIP LOCKED: rows another instance (or a receipt, a recall) holds are left to it;
    this instance takes the rest, so two jobs split the work instead of queueing on it.
    Only the message rows are locked (``of``): a consent row is read, never written here.
    Expiry is inclusive (``keys.domain.lifecycle.is_expired``: now >= expires), and
    so is a consent's end. The consent is looked at as well as the (capped) expiry:
    messages accepted before the cap existed may wait past their consent's end.
    """
    consent_end = (
        select(ConsentRow.valid_until)
        .where(ConsentRow.id == MessageRow.consent_id)
        .scalar_subquery()
    )
    query = (
        select(MessageRow.id, MessageRow.expires, consent_end)
        .where(
            MessageRow.state.in_(list(states)),
            or_(MessageRow.expires <= now, consent_end <= now),
        )
        .order_by(MessageRow.expires, MessageRow.id)
        .limit(limit)
        .with_for_update(of=MessageRow, skip_locked=True)
    )
    if exclude:
        query = query.where(MessageRow.id.not_in(list(exclude)))
    return [
        (str(m), int(e), None if c is None else int(c)) for m, e, c in await session.execute(query)
    ]


async def state_of(session: AsyncSession, message_id: str) -> str | None:
    state = await session.scalar(select(MessageRow.state).where(MessageRow.id == message_id))
    return None if state is None else str(state)


async def scrub_ended(
    session: AsyncSession, *, states: Collection[str], before: int, redacted: str, limit: int
) -> int:
    """Replace subject reference and sender key id by ``redacted`` and delete the
    recipient rows of at most ``limit`` messages in ``states`` since ``before`` (oldest
    first); returns how many messages. Rows another instance (or a late receipt) holds
    are skipped (SKIP LOCKED)."""
    ids = list(
        await session.scalars(
            select(MessageRow.id)
            .where(
                MessageRow.state.in_(list(states)),
                MessageRow.state_changed_at <= before,
                or_(MessageRow.subject_ref != redacted, MessageRow.sender_kid != redacted),
            )
            .order_by(MessageRow.state_changed_at, MessageRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        await session.execute(
            update(MessageRow)
            .where(MessageRow.id.in_(ids))
            .values(subject_ref=redacted, sender_kid=redacted)
        )
        await session.execute(delete(MessageRecipient).where(MessageRecipient.message_id.in_(ids)))
    return len(ids)


async def referenced_blob_keys(session: AsyncSession, blob_keys: Collection[str]) -> set[str]:
    """The subset of ``blob_keys`` some message row references."""
    rows = await session.scalars(
        select(MessageRow.blob_key).where(MessageRow.blob_key.in_(list(blob_keys)))
    )
    return {k for k in rows if k is not None}


async def count_in_states(session: AsyncSession, states: Collection[str]) -> int:
    query = select(func.count()).where(MessageRow.state.in_(list(states)))
    return int((await session.execute(query)).scalar_one())

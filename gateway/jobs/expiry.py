"""Periodic jobs: plain async functions, ``now`` passed in, each returning a count.

``gateway.jobs.scheduler`` only triggers them; tests call them directly with literal times.
Every job is correct when two gateway instances run it at the same moment against one
PostgreSQL: the database coordinates, not the process (row locks with SKIP LOCKED,
conditional updates, the audit chain's advisory lock). On SQLite every transaction
holds the single write lock (BEGIN IMMEDIATE), which gives the same guarantees.

The jobs log ids and counts only — never content, subject references or keys.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.blobs import unlink_all
from gateway.blobstore import Blobs
from gateway.db import audit_store, nonce_store
from gateway.db import audit_trail as audit
from gateway.db.engine import SessionMaker
from gateway.db.models import ConsentRow, MessageRow
from gateway.identity import GatewayIdentity
from gateway.services.messages import end_pending
from keys.domain.lifecycle import NOT_COLLECTED, PENDING, MessageState, ending_due, transition

log = logging.getLogger("gateway.jobs.expiry")

PENDING_STATES = tuple(str(state) for state in PENDING)
EXPIRE_BATCH = 100
# Why nonces may go: a request older than the skew window is refused as
# signature_expired before its nonce is looked at; the extra minute covers clock
# differences between instances.
NONCE_MARGIN_S = 60
EXPIRED_REASON = NOT_COLLECTED


async def _due_for_expiry(
    session: AsyncSession, *, now: int, limit: int, exclude: Collection[str]
) -> list[tuple[str, int, int | None]]:
    """Pending messages whose expiry or whose consent's end passed, locked for this
    transaction: ``(id, expires, the consent's valid_until)``.

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
            MessageRow.state.in_(PENDING_STATES),
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


async def _state_of(session: AsyncSession, message_id: str) -> str | None:
    state = await session.scalar(select(MessageRow.state).where(MessageRow.id == message_id))
    return None if state is None else str(state)


async def expire_messages(
    sessionmaker: SessionMaker, blobs: Blobs | Path, *, now: int, batch: int = EXPIRE_BATCH
) -> int:
    """End every pending message whose expiry or whose consent's end passed; returns
    how many this call ended.

    Per message (in ``gateway.services.messages.end_pending``, the one way a pending
    message ends): content destroyed, one audit entry, a notice to the sender and
    ``inbox.removed`` to the recipients. The ending is the pure rule's
    (``keys.domain.lifecycle.ending_due``): past its consent's ``valid_until`` a
    message is *withdrawn* like under a withdrawn consent, reason ``consent_ended``
    (``outbox.withdrawn``, ``message_withdrawn``); otherwise past its own expiry it is
    *expired*, reason ``not_collected`` (``outbox.expired``, ``message_expired``).
    Files are unlinked after each batch commits.

    Exactly once across instances: the conditional ``UPDATE … WHERE state IN
    (pending)`` inside ``end_pending`` moves a message only if nobody moved it first, so
    a message never gets two audit entries or two notices.
    """
    ended_total = 0
    failed: set[str] = set()
    while True:
        files: list[Path] = []
        async with sessionmaker.begin() as session:
            # The audit lock first, rows second: every message end audits, and a
            # withdrawal takes rows then the audit lock. Taking the audit lock before any
            # row (and never waiting on a row after it: SKIP LOCKED) avoids a deadlock.
            await audit_store.lock_chain(session)
            due = await _due_for_expiry(session, now=now, limit=batch, exclude=failed)
            for message_id, expires, consent_until in due:
                ending = ending_due(expires=expires, consent_valid_until=consent_until, now=now)
                if ending is None:  # never: the query selected it as due
                    continue
                event, reason = ending
                try:
                    # A savepoint: one message that cannot be ended (a corrupt row)
                    # is logged and skipped without undoing the rest of the batch.
                    async with session.begin_nested():
                        files.extend(
                            await end_pending(
                                session, message_id, event, now=now, blobs=blobs, reason=reason
                            )
                        )
                except Exception as exc:
                    failed.add(message_id)
                    # Class name only: a database error's text carries the statement's
                    # parameters (the audit data names the subject reference).
                    log.error(
                        "could not expire message %s (%s); the next run will retry",
                        message_id,
                        type(exc).__qualname__,
                    )
                    continue
                if await _state_of(session, message_id) == transition(MessageState.ACCEPTED, event):
                    ended_total += 1
        # After the commit: a rolled-back batch must not have deleted accepted content.
        unlink_all(files)
        if len(due) < batch:
            return ended_total


async def sign_audit_checkpoint(
    sessionmaker: SessionMaker, identity: GatewayIdentity, *, now: int
) -> int:
    """Sign a checkpoint of the audit head if it moved; returns the checkpointed size.

    ``gateway.db.audit_trail.sign_checkpoint`` orders concurrent signers with the chain lock, so
    two instances produce one checkpoint per head, not two.
    """
    async with sessionmaker.begin() as session:
        row = await audit.sign_checkpoint(session, identity.kid, identity.signing_key, now=now)
    return 0 if row is None else row.size


async def purge_nonces(sessionmaker: SessionMaker, *, clock_skew_s: int, now: int) -> int:
    """Forget request nonces that can no longer be replayed; returns how many."""
    async with sessionmaker.begin() as session:
        return await nonce_store.purge_nonces(session, now - clock_skew_s - NONCE_MARGIN_S)

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
from pathlib import Path

from gateway.blobs import unlink_all
from gateway.blobstore import Blobs
from gateway.db import audit_store, message_store, nonce_store
from gateway.db import audit_trail as audit
from gateway.db.engine import SessionMaker
from gateway.identity import GatewayIdentity
from gateway.services.messages import end_pending
from keys.domain.lifecycle import NOT_COLLECTED, PENDING, MessageState, ending_due, transition

log = logging.getLogger("gateway.jobs.expiry")

PENDING_STATES = tuple(str(state) for state in PENDING)
EXPIRE_BATCH = 100
EXPIRED_REASON = NOT_COLLECTED


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
            due = await message_store.due_for_ending(
                session, states=PENDING_STATES, now=now, limit=batch, exclude=failed
            )
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
                if await message_store.state_of(session, message_id) == transition(
                    MessageState.ACCEPTED, event
                ):
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
    """Forget request nonces that can no longer be replayed; returns how many.

    Why they may go: a request older than the skew window is refused as
    signature_expired before its nonce is looked at, and a unit of work refuses one
    older than what is kept (``nonce_store.NONCE_KEPT_S``)."""
    oldest = now - clock_skew_s - nonce_store.NONCE_KEPT_S
    async with sessionmaker.begin() as session:
        return await nonce_store.purge_nonces(session, oldest)

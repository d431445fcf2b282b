"""Retention: what the gateway stops holding once a message has ended.

A message that ended (handed over, rejected, expired, withdrawn, recalled) lost its
content at that moment (``gateway.services.messages``). What is left links people to
each other: the subject reference (which person), the sender's key id and the recipient
devices (which officers). Those are kept for ``settings.retention_days`` — long enough
for the sender's status view, for a dispute about a handover and for the notices to be
read — and then removed:

- the message row keeps its id, units, category, purpose, state and times (what the
  report and the audit entries refer to); ``subject_ref`` and ``sender_kid`` become
  :data:`REDACTED` and its ``message_recipients`` rows are deleted;
- a webhook delivery that settled (delivered, or failed after its last try) is deleted
  ``settings.webhook_retention_days`` after it settled (``db/webhook_delivery_store``);
  pending ones stay;
- an event is deleted once it is consumed and old: older than the retention period and
  about a message that has ended, or about no message (a consent reminder). An event
  about a pending message is kept (its message ends within ``max_ttl_s`` anyway). A
  device that was offline longer than the period resumes from the lists
  (``/v1/inbox``, ``/v1/outbox``), which is what they are for.

Not touched, by decision (SECURITY.md, "Retention"): the audit chain — every entry's
hash covers its data, so removing a subject reference would break the verification of
every later entry, and "who looked up this person, when" is the reason the trail exists
(the reference is a pseudonym keyed with the city key, which the gateway does not
hold); receipts — the signed proof of handover, holding a key id and a hash, no subject;
consents — the signed legal ground the audit entries point to.

A plain async function with ``now`` passed in. Correct with two instances at once: rows
are taken with SKIP LOCKED and the updates are idempotent (a second run finds nothing
left to remove). Logs carry counts only.
"""

from __future__ import annotations

from gateway.db import event_store, message_store, webhook_delivery_store
from gateway.db.engine import SessionMaker
from keys.domain.lifecycle import TERMINAL

DAY_S = 86_400
REDACTED = ""  # never a valid subject reference or key id, so it matches no lookup
RETENTION_BATCH = 500
ENDED_STATES = tuple(sorted(str(state) for state in TERMINAL))


async def _scrub_messages(sessionmaker: SessionMaker, *, before: int, batch: int) -> int:
    """Remove the subject reference and device ids of messages ended before ``before``."""
    total = 0
    while True:
        async with sessionmaker.begin() as session:
            scrubbed = await message_store.scrub_ended(
                session, states=ENDED_STATES, before=before, redacted=REDACTED, limit=batch
            )
        total += scrubbed
        if scrubbed < batch:
            return total


async def _delete_old_events(sessionmaker: SessionMaker, *, before: int) -> int:
    async with sessionmaker.begin() as session:
        return await event_store.delete_consumed(
            session, before=before, ended_states=list(ENDED_STATES)
        )


async def apply_retention(
    sessionmaker: SessionMaker,
    *,
    now: int,
    retention_days: int,
    batch: int = RETENTION_BATCH,
    webhook_retention_days: int | None = None,
) -> int:
    """Remove what the gateway no longer needs (module docstring); returns how many
    message rows were scrubbed plus how many events and settled webhook deliveries
    (``webhook_retention_days`` after they settled; None: keep them) were deleted."""
    before = now - retention_days * DAY_S
    scrubbed = await _scrub_messages(sessionmaker, before=before, batch=batch)
    removed = scrubbed + await _delete_old_events(sessionmaker, before=before)
    if webhook_retention_days is not None:
        removed += await webhook_delivery_store.purge_settled(
            sessionmaker, before=now - webhook_retention_days * DAY_S, batch=batch
        )
    return removed

"""Deadline jobs: escalate overdue handovers, remind of consents ending. Plain async
functions, ``now`` passed in, each returning how many it handled.

The decisions are the pure domain's (``keys.domain.escalation``,
``keys.domain.reminders``); this module selects rows, claims them and notifies.

"Once", across instances and restarts (the database coordinates, not the process):

- each batch runs in one transaction that takes the audit chain's lock first (the same
  order as ``gateway.jobs.expiry.expire_messages``: audit lock, then rows with SKIP LOCKED,
  never waiting on a row after the lock, so no deadlock with receipts or withdrawals);
- a row is claimed with a conditional update of its marker (``escalated_at`` /
  ``reminded_at`` ``IS NULL``), and only a claimed row gets its events and its audit
  entry, in that same transaction. A second instance finds the marker set (or the row
  locked) and does nothing; a crash before the commit leaves the marker empty, and the
  first run after the restart does the work.

Events and logs carry ids, unit codes and vocabulary codes only — never content,
subject references or keys.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.appkeys import DIRECTORY, SESSIONMAKER, SETTINGS
from gateway.db import audit_store, deadline_store, message_store
from gateway.db import audit_trail as audit
from gateway.db.engine import SessionMaker
from gateway.db.models import ConsentRow, MessageRow
from gateway.services.directory import DirectoryService
from gateway.services.events import emit
from gateway.services.message_content import devices_of, message_facts
from keys.domain.escalation import DeviceFlags, DueMessage, escalation_for, is_overdue
from keys.domain.reminders import DAY_S, ConsentTerm, Reminder, consents_to_remind
from keys.protocol.directory import Directory

log = logging.getLogger("gateway.jobs.expiry")

BATCH = 100
OVERDUE_TO_SENDER = "outbox.overdue"
OVERDUE_TO_RECIPIENT = "inbox.overdue"
CONSENT_ENDING = "consent.ending"

Job = Callable[[int], Awaitable[int]]


def unit_devices(directory: Directory, unit: str) -> list[DeviceFlags]:
    """Every device of ``unit`` as the verified directory lists it."""
    return [
        DeviceFlags(str(record.device), record.contact, record.revoked)
        for record in directory.devices.values()
        if record.device.unit == unit
    ]


async def current_directory(sessionmaker: SessionMaker, service: DirectoryService) -> Directory:
    """The verified directory caught up with the database (another instance may have
    revoked a device or designated a contact since this one last served a request)."""
    async with sessionmaker() as session:
        return await service.refresh(session)


# --- escalation ---------------------------------------------------------------------------
async def escalate_overdue(
    sessionmaker: SessionMaker, directory: Directory, *, now: int, batch: int = BATCH
) -> int:
    """Escalate every pending message whose due time passed; returns how many.

    Per message: ``outbox.overdue`` to the sending device (or its unit's contacts if it
    was revoked), ``inbox.overdue`` to the recipient unit's contact devices (or, if it
    designated none, the devices the sender addressed), and one audit entry
    ``message_escalated`` naming who was told.
    """
    escalated = 0
    seen: set[str] = set()
    while True:
        async with sessionmaker.begin() as session:
            await audit_store.lock_chain(session)
            rows = await deadline_store.overdue_messages(
                session, now=now, limit=batch, exclude=seen
            )
            for row in rows:
                message_id = row.id  # read now: a rolled-back savepoint expires the row
                seen.add(message_id)
                try:
                    # A savepoint: one row that cannot be escalated (a corrupt kid) is
                    # logged and skipped without undoing the rest of the batch.
                    async with session.begin_nested():
                        escalated += await _escalate(session, row, directory, now=now)
                except Exception:
                    log.exception("could not escalate message %s; will retry", message_id)
        if len(rows) < batch:
            return escalated


async def _escalate(
    session: AsyncSession, row: MessageRow, directory: Directory, *, now: int
) -> int:
    recipient_kids = await message_store.recipients(session, row.id)
    message = DueMessage(
        message_id=row.id,
        sender_kid=row.sender_kid,
        sender_unit=row.sender_unit,
        recipient_unit=row.recipient_unit,
        state=row.state,
        due=row.due,
        escalated_at=row.escalated_at,
        recipient_kids=tuple(recipient_kids),
    )
    if not is_overdue(message, now=now) or row.due is None:
        return 0
    plan = escalation_for(
        message,
        unit_devices(directory, row.recipient_unit),
        unit_devices(directory, row.sender_unit),
    )
    if not await deadline_store.mark_escalated(session, row.id, now=now):
        return 0  # another instance, a receipt or a recall came first
    data: dict[str, Any] = {
        "state": row.state,
        "due": row.due,
        "sender_unit": row.sender_unit,
        "recipient_unit": row.recipient_unit,
        "category": row.category,
        "purpose": row.purpose,
        # Devices of the recipient unit the sender addressed: whom a contact chases.
        "addressed": devices_of(recipient_kids),
    }
    for notice in plan.notices:
        sender_side = notice.role in ("sender", "sender_contact")
        await emit(
            session,
            device=notice.device,
            kind=OVERDUE_TO_SENDER if sender_side else OVERDUE_TO_RECIPIENT,
            message_id=row.id,
            data={**data, "role": notice.role},
            now=now,
        )
    await audit.record(
        session,
        "message_escalated",
        now=now,
        **message_facts(row),
        due=row.due,
        notified=[{"device": n.device, "role": n.role} for n in plan.notices],
        # False: the recipient unit has no active contact device; an administrator
        # should designate one (the audit trail is where that shows).
        recipient_has_contact=plan.recipient_has_contact,
    )
    return 1


# --- consent reminders --------------------------------------------------------------------
async def remind_consents_ending(
    sessionmaker: SessionMaker,
    *,
    now: int,
    days_before: int,
    directory: Directory | None = None,
    batch: int = BATCH,
) -> int:
    """Remind the recording unit of each consent ending within ``days_before`` days,
    once; returns how many consents were reminded.

    The event ``consent.ending`` goes to the recording device; with ``directory`` given
    and that device revoked or gone, to its unit's active contact devices instead. One
    audit entry ``consent_reminder`` per consent.
    """
    if days_before < 0:
        raise ValueError("days_before must not be negative")
    reminded = 0
    seen: set[str] = set()
    while True:
        async with sessionmaker.begin() as session:
            await audit_store.lock_chain(session)
            rows = await deadline_store.consents_ending(
                session, now=now, until=now + days_before * DAY_S, limit=batch, exclude=seen
            )
            seen.update(row.id for row in rows)
            for reminder in consents_to_remind(_terms(rows), now, days_before):
                try:
                    async with session.begin_nested():
                        reminded += await _remind(session, reminder, directory, now=now)
                except Exception:
                    log.exception("could not remind of consent %s; will retry", reminder.consent_id)
        if len(rows) < batch:
            return reminded


def _terms(rows: list[ConsentRow]) -> list[ConsentTerm]:
    return [
        ConsentTerm(r.id, r.recorded_by, r.valid_until, r.withdrawn_at, r.reminded_at) for r in rows
    ]


def _reminder_targets(reminder: Reminder, directory: Directory | None) -> list[str]:
    if directory is None:
        return [reminder.device]
    record = directory.devices.get(reminder.device)
    if record is not None and not record.revoked:
        return [reminder.device]
    # The recorder is gone: the unit must still learn of it, through its contacts
    # (never "every device of the unit": the consent names a person's case).
    return sorted(
        device
        for device, contact, revoked in unit_devices(directory, reminder.unit)
        if contact and not revoked
    )


async def _remind(
    session: AsyncSession, reminder: Reminder, directory: Directory | None, *, now: int
) -> int:
    if not await deadline_store.mark_reminded(session, reminder.consent_id, now=now):
        return 0
    targets = _reminder_targets(reminder, directory)
    days_left = -(-(reminder.valid_until - now) // DAY_S)  # whole days, rounded up
    for device in targets:
        await emit(
            session,
            device=device,
            kind=CONSENT_ENDING,
            message_id=None,
            data={
                "consent_id": reminder.consent_id,
                "valid_until": reminder.valid_until,
                "days_left": days_left,
            },
            now=now,
        )
    await audit.record(
        session,
        "consent_reminder",
        now=now,
        consent_id=reminder.consent_id,
        unit=reminder.unit,
        valid_until=reminder.valid_until,
        notified=targets,
    )
    return 1


# --- wiring -------------------------------------------------------------------------------
def deadline_jobs(app: web.Application) -> list[tuple[str, float, Job]]:
    """``(name, interval_s, run)`` for ``gateway.jobs.scheduler.job_table`` to schedule."""
    settings, sessionmaker = app[SETTINGS], app[SESSIONMAKER]

    async def escalate(now: int) -> int:
        directory = await current_directory(sessionmaker, app[DIRECTORY])
        return await escalate_overdue(sessionmaker, directory, now=now)

    async def remind(now: int) -> int:
        directory = await current_directory(sessionmaker, app[DIRECTORY])
        return await remind_consents_ending(
            sessionmaker,
            now=now,
            days_before=settings.consent_reminder_days,
            directory=directory,
        )

    return [
        ("escalate_overdue", settings.escalation_interval_s, escalate),
        ("remind_consents_ending", settings.consent_reminder_interval_s, remind),
    ]

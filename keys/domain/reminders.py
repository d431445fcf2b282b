"""Consent-ending reminders: which consents to remind about, and whom. Pure.

A consent ends on a fixed date (an end date is mandatory). The unit that recorded it
is reminded ``days_before`` days ahead, so it can ask the individual for a new consent
before handovers start being refused — and not by surprise in the middle of a case.

As with escalation, "once" is enforced by the wiring with a conditional update
(``UPDATE consents SET reminded_at = :now WHERE id = :id AND reminded_at IS NULL``) in
the same transaction as the event, so two instances remind once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from keys.crypto.ids import KeyId
from keys.errors import KeysError

DAY_S = 86_400
DEFAULT_DAYS_BEFORE = 14


@dataclass(frozen=True)
class ConsentTerm:
    """What a reminder needs of a consent (a projection of its row)."""

    consent_id: str
    recorded_by: str  # the kid of the device that recorded it
    valid_until: int
    withdrawn_at: int | None = None
    reminded_at: int | None = None


@dataclass(frozen=True)
class Reminder:
    consent_id: str
    unit: str  # the recording unit: the event goes to this unit's inbox
    device: str  # the recording device (unit/name), for a direct notice
    valid_until: int


def needs_reminder(consent: ConsentTerm, *, now: int, days_before: int) -> bool:
    """Still running, ends within ``days_before`` days, not withdrawn, not reminded yet."""
    if days_before < 0:
        raise ValueError("days_before must not be negative")
    return (
        consent.withdrawn_at is None  # a withdrawn consent is over; no renewal to chase
        and consent.reminded_at is None
        and now < consent.valid_until  # an ended consent: too late for a reminder
        and consent.valid_until - now <= days_before * DAY_S
    )


def consents_to_remind(
    consents: Iterable[ConsentTerm], now: int, days_before: int = DEFAULT_DAYS_BEFORE
) -> list[Reminder]:
    """Reminders to send now, soonest ending first (ties by id, so the order is stable).

    A consent whose recorder is not a device key id is skipped rather than reminded to
    some guessed unit (threat: a reminder that names a consent reaching the wrong unit).
    """
    reminders: list[Reminder] = []
    for consent in consents:
        if not needs_reminder(consent, now=now, days_before=days_before):
            continue
        try:
            kid = KeyId.parse(consent.recorded_by)
        except KeysError:
            continue
        reminders.append(
            Reminder(consent.consent_id, kid.unit, str(kid.device), consent.valid_until)
        )
    return sorted(reminders, key=lambda r: (r.valid_until, r.consent_id))

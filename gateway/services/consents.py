"""The consent registry: record, list, show and withdraw consents.

The rules are the pure domain's (``keys.domain.consent``: ``check_specific``,
``withdraw``); this module verifies signatures against the directory, stores, audits and
hands the withdrawal on to the messages under the consent.

Visibility: a consent is shown only to its party units. For every other unit it does
not exist (``consent_unknown``, the same answer as for an unknown id): that a person has
a consent with, say, the police is itself sensitive.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.blobstore import Blobs
from gateway.caller import Caller, require_device
from gateway.db import audit_trail as audit
from gateway.db import consent_store
from gateway.db.models import ConsentRow
from gateway.services.message_content import withdraw_pending
from gateway.settings import Settings
from keys.crypto.canonical import canonical_json
from keys.domain.consent import Consent, ConsentPolicy, check_specific, withdraw
from keys.protocol.consent_record import ConsentRecord, parse_consent_record, verify_consent_record
from keys.protocol.directory import Directory
from keys.protocol.problems import ConsentConflict, FieldInvalid, Forbidden
from keys.protocol.refusals import ConsentUnknown
from keys.protocol.vocabulary import load_vocabulary

CONSENT_VERSION = 1  # a record is immutable; an amendment would be a new version
RENEWAL_MIN_S = 86_400  # a consent like an active one must end a day later to be new
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def policy_from(settings: Settings) -> ConsentPolicy:
    return ConsentPolicy(
        load_vocabulary(),
        max_months=settings.max_consent_months,
        clock_skew_s=settings.clock_skew_s,
    )


@functools.lru_cache(maxsize=1024)
def _record_of(record_json: str) -> ConsentRecord:
    # Every send, fetch and receipt reads its consent: the stored JSON (immutable once
    # stored: a new version is a new text) is parsed once, not per request.
    return parse_consent_record(json.loads(record_json))


def consent_of(row: ConsentRow) -> Consent:
    """The domain value of a stored row (the record was verified when it was stored)."""
    return Consent(
        record=_record_of(row.record_json),
        version=row.version,
        withdrawn_at=row.withdrawn_at,
        withdrawal_reason=row.withdrawal_reason,
    )


def status_of(consent: Consent, now: int) -> str:
    record = consent.record
    if consent.withdrawn_at is not None:
        return "withdrawn"
    if now < record.valid_from:
        return "not_yet_valid"
    if record.valid_until is None or now >= record.valid_until:
        return "expired"
    return "active"


def consent_json(row: ConsentRow, now: int) -> dict[str, Any]:
    consent = consent_of(row)
    return {
        "consent_id": row.id,
        "version": row.version,
        "status": status_of(consent, now),
        "withdrawn_at": row.withdrawn_at,
        "withdrawal_reason": row.withdrawal_reason,
        "record": json.loads(row.record_json),
    }


async def record_consent(
    session: AsyncSession,
    caller: Caller,
    raw: dict[str, Any],
    *,
    directory: Directory,
    policy: ConsentPolicy,
    now: int,
) -> tuple[dict[str, Any], bool]:
    """Verify, check and store a signed consent record; ``(answer, created)``.

    Re-posting the identical record answers as the first time (idempotent); a
    different record under the same id is ``consent_conflict``. A new record that says
    what an active consent already says (same subject, pairs, categories and purposes,
    not ending a day or more later, the caller's unit a party to both) is not stored:
    the answer is the existing consent's id with ``"existing": true`` and status 200,
    so one person does not collect silent duplicates that must all be found and
    withdrawn later.
    """
    require_device(caller)
    record = parse_consent_record(raw)
    if record.recorded_by.unit != caller.unit:
        # Threat: a unit uploading consents recorded elsewhere to make itself look
        # covered. The record's own parties are checked by check_specific as well.
        raise Forbidden("a device can only register consents recorded in its own unit")
    # The key comes from the verified directory, never from the record itself.
    verify_consent_record(raw, directory.signing_key(record.recorded_by))
    check_specific(record, now=now, policy=policy, known_units=directory.units.keys())
    stored = canonical_json(raw).decode("utf-8")
    answer = {"consent_id": record.consent_id, "version": CONSENT_VERSION}
    existing = await consent_store.get(session, record.consent_id)
    if existing is not None:
        if existing.record_json != stored:
            raise ConsentConflict()
        return answer, False
    same = await _active_duplicate(session, caller, record, now=now)
    if same is not None:
        return {"consent_id": same.consent_id, "version": same.version, "existing": True}, False
    row = ConsentRow(
        id=record.consent_id,
        version=CONSENT_VERSION,
        subject_ref=record.subject_ref,
        recorded_by=str(record.recorded_by),
        record_json=stored,
        valid_from=record.valid_from,
        valid_until=record.valid_until or 0,  # check_specific refused a missing end
        withdrawn_at=None,
        withdrawal_reason=None,
        created_at=now,
    )
    await consent_store.insert(session, row, record.parties)
    await audit.record(
        session,
        "consent_recorded",
        now=now,
        consent_id=record.consent_id,
        version=CONSENT_VERSION,
        subject_ref=record.subject_ref,
        recorded_by=str(record.recorded_by),
        pairs=[[p.from_unit, p.to_unit] for p in record.pairs],
        categories=list(record.categories),
        purposes=list(record.purposes),
        valid_from=record.valid_from,
        valid_until=record.valid_until,
        form=record.form,
        minor=record.minor,
    )
    return answer, True


def _adds_nothing(existing: ConsentRecord, new: ConsentRecord) -> bool:
    """``new`` says what ``existing`` says, for no longer (a renewal must reach at least
    :data:`RENEWAL_MIN_S` past the existing end: a client that computes "90 days from
    now" twice must not get two consents because a second passed in between)."""
    return (
        existing.subject_ref == new.subject_ref
        and set(existing.pairs) == set(new.pairs)
        and set(existing.categories) == set(new.categories)
        and set(existing.purposes) == set(new.purposes)
        and existing.valid_from <= new.valid_from
        and (existing.valid_until or 0) + RENEWAL_MIN_S > (new.valid_until or 0)
    )


async def _active_duplicate(
    session: AsyncSession, caller: Caller, record: ConsentRecord, *, now: int
) -> Consent | None:
    """An active consent of the caller's unit that covers exactly what ``record`` does.

    Only consents where the caller's unit is a party are looked at, so the answer
    reveals nothing the caller could not list anyway.
    """
    for row in await consent_store.for_subject(session, record.subject_ref, caller.unit):
        consent = consent_of(row)
        if consent.is_active(now) and _adds_nothing(consent.record, record):
            return consent
    return None


def check_subject_ref(value: str | None) -> str:
    # fullmatch: with match, "$" also accepts a trailing newline.
    if value is None or not _HEX64.fullmatch(value):
        raise FieldInvalid("subject_ref must be 64 lower-case hex characters")
    return value


async def list_consents(
    session: AsyncSession, caller: Caller, subject_ref: str, *, now: int
) -> list[dict[str, Any]]:
    require_device(caller)
    rows = await consent_store.for_subject(session, subject_ref, caller.unit)
    # Looking up a person is an access to their data: recorded like a decision.
    await audit.record(
        session,
        "consents_listed",
        now=now,
        kid=str(caller.kid),
        subject_ref=subject_ref,
        count=len(rows),
    )
    return [consent_json(row, now) for row in rows]


async def _party_row(
    session: AsyncSession, caller: Caller, consent_id: str, *, lock: consent_store.Lock = None
) -> ConsentRow:
    row = await consent_store.get(session, consent_id, lock=lock)
    if row is None or caller.unit not in await consent_store.parties(session, consent_id):
        raise ConsentUnknown()
    return row


async def get_consent(
    session: AsyncSession, caller: Caller, consent_id: str, *, now: int
) -> dict[str, Any]:
    require_device(caller)
    row = await _party_row(session, caller, consent_id)
    # Reading one consent reveals the subject reference and the whole record: an access
    # to the person's data, recorded like a listing (ids only, never the record).
    await audit.record(session, "consent_read", now=now, kid=str(caller.kid), consent_id=consent_id)
    return consent_json(row, now)


@dataclass(frozen=True)
class Withdrawal:
    answer: dict[str, Any]
    files: list[Path]  # blob files to unlink once the transaction committed


async def withdraw_consent(
    session: AsyncSession,
    caller: Caller,
    consent_id: str,
    *,
    reason: str,
    withdrawn_at: int | None,
    policy: ConsentPolicy,
    blobs: Blobs,
    now: int,
) -> Withdrawal:
    """Register the person's withdrawal (any party unit) and withdraw every pending
    message under the consent in the same transaction. Repeating it changes nothing."""
    require_device(caller)
    row = await _party_row(session, caller, consent_id, lock="update")
    consent = consent_of(row)
    after = withdraw(
        consent,
        by_unit=caller.unit,
        reason=reason,
        now=now,
        policy=policy,
        withdrawn_at=withdrawn_at,
    )
    files: list[Path] = []
    withdrawn_messages = 0
    if after is not consent and after.withdrawn_at is not None and after.withdrawal_reason:
        await consent_store.mark_withdrawn(
            session, consent_id, withdrawn_at=after.withdrawn_at, reason=after.withdrawal_reason
        )
        files, withdrawn_messages = await withdraw_pending(
            session, consent_id, now=now, reason=after.withdrawal_reason, blobs=blobs
        )
        await audit.record(
            session,
            "consent_withdrawn",
            now=now,
            consent_id=consent_id,
            version=row.version,
            subject_ref=row.subject_ref,
            kid=str(caller.kid),
            reason=after.withdrawal_reason,
            withdrawn_at=after.withdrawn_at,
            messages_withdrawn=withdrawn_messages,
        )
        await session.refresh(row)
    answer = consent_json(row, now)
    answer["messages_withdrawn"] = withdrawn_messages
    return Withdrawal(answer, files)

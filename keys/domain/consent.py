"""Consent: is a record specific enough to be a consent, and does it cover a transfer?

Pure functions over plain values; ``now`` is always passed in. Two questions:

- :func:`check_specific` — when a consent is recorded: "Samtycket får inte ges ett så
  generellt innehåll att den enskilde allmänt förklarar sig avstå från sekretessen"
  (DOMAIN.md). A consent that names no recipient, every category, or no end date is not
  a consent. Each rule raises its own :class:`~.errors.ConsentNotSpecific` subclass.
- :func:`decide` — for every send: deny by default; accept only when the one consent
  the envelope names covers sender unit → recipient unit × category × purpose ×
  subject × now, and has not been withdrawn.
"""

from __future__ import annotations

import calendar
import hmac
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from keys.crypto.ids import is_valid_name
from keys.protocol.consent_record import ConsentRecord, GuardianConsent
from keys.protocol.refusals import (
    REFUSALS,
    ConsentEvidenceMissing,
    ConsentGuardianMissing,
    ConsentNoCategories,
    ConsentNoEnd,
    ConsentNoPairs,
    ConsentNoPurposes,
    ConsentProcessingNotCovered,
    ConsentRecorderNotParty,
    ConsentSelfPair,
    ConsentTooBroad,
    ConsentTooLong,
    ConsentUnknown,
    ConsentUnknownCategory,
    ConsentUnknownPurpose,
    ConsentUnknownUnit,
    ConsentWildcard,
    ConsentWindowInvalid,
    ConsentWithdrawalInvalid,
    ConsentWitnessMissing,
)
from keys.protocol.vocabulary import Vocabulary

# Spellings of "everyone/everything" a form or a client might use in place of naming
# things. Refused outright so that no future vocabulary or unit can accidentally be
# called "all" and turn a consent into a general waiver.
WILDCARD_TERMS = frozenset(
    {"*", "all", "any", "every", "everyone", "everything", "alla", "samtliga", "allt", "none"}
)
_WILDCARD_CHARS = frozenset("*?%")
RESERVED_UNITS = frozenset({"admin"})  # the security admins' pseudo-unit is never a party


@dataclass(frozen=True)
class ConsentPolicy:
    """Settings for consent specificity (one frozen object, passed down)."""

    vocabulary: Vocabulary
    max_months: int = 12
    # Devices' clocks differ; a record "created" a little in the future is not forged.
    clock_skew_s: int = 300


@dataclass(frozen=True)
class Consent:
    """A recorded consent as the gateway holds it: the signed record + its status."""

    record: ConsentRecord
    version: int = 1
    withdrawn_at: int | None = None
    withdrawal_reason: str | None = None

    @property
    def consent_id(self) -> str:
        return self.record.consent_id

    @property
    def parties(self) -> frozenset[str]:
        return self.record.parties

    def is_active(self, now: int) -> bool:
        """Not withdrawn and ``valid_from ≤ now < valid_until``."""
        r = self.record
        return (
            self.withdrawn_at is None
            and r.valid_until is not None
            and r.valid_from <= now < r.valid_until
        )


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`: ``code is None`` means accepted."""

    code: str | None
    consent_id: str | None = None
    consent_version: int | None = None

    @property
    def accepted(self) -> bool:
        return self.code is None

    def raise_for_refusal(self) -> None:
        """Raise the :class:`~.errors.ConsentRefused` subclass for a refusal."""
        if self.code is not None:
            raise REFUSALS[self.code]()


def _refuse(code: str) -> Decision:
    # A refusal carries no consent id: for consent_unknown that would leak existence.
    return Decision(code)


def decide(
    consent: Consent | None,
    *,
    sender_unit: str,
    recipient_unit: str,
    subject_ref: str,
    category: str,
    purpose: str,
    now: int,
) -> Decision:
    """Decide one transfer. Deny by default: every path but the last one refuses.

    The order matters. Existence and party-ship come first, so a unit probing foreign
    consent ids gets ``consent_unknown`` whatever the consent says (threat: learning
    that a person has a consent with, say, the police). Withdrawal and validity come
    before coverage, so a party is told the most useful reason to stop.
    """
    if consent is None or sender_unit not in consent.parties:
        return _refuse("consent_unknown")
    record = consent.record
    # Constant time: the pseudonym is the one secret-ish value compared here.
    if not hmac.compare_digest(record.subject_ref.encode(), subject_ref.encode()):
        return _refuse("consent_subject_mismatch")
    if consent.withdrawn_at is not None:
        return _refuse("consent_withdrawn")
    if now < record.valid_from:
        return _refuse("consent_not_yet_valid")
    if record.valid_until is None or now >= record.valid_until:
        return _refuse("consent_expired")
    if not any(p.from_unit == sender_unit and p.to_unit == recipient_unit for p in record.pairs):
        return _refuse("consent_direction_not_covered")
    if category not in record.categories:
        return _refuse("consent_category_not_covered")
    if purpose not in record.purposes:
        return _refuse("consent_purpose_not_covered")
    return Decision(None, record.consent_id, consent.version)


def require_in_force(consent: Consent | None, *, now: int) -> None:
    """Refuse handing out, fetching or receipting content under an ended consent.

    A consent's end (``valid_until``) is an end exactly as a withdrawal is: nothing
    accepted under it leaves the gateway afterwards. Raises ``consent_withdrawn`` or
    ``consent_expired`` (the send refusals' codes: the same meaning, "no consent covers
    this transfer now"). Threat: a recipient racing the job that ends the consent's
    pending messages — the check is on every path, not only in the job.
    """
    if consent is None:
        raise REFUSALS["consent_unknown"]()
    if consent.withdrawn_at is not None:
        raise REFUSALS["consent_withdrawn"]()
    until = consent.record.valid_until
    if until is None or now >= until:
        raise REFUSALS["consent_expired"]()


def check_specific(
    record: ConsentRecord,
    *,
    now: int,
    policy: ConsentPolicy,
    known_units: Collection[str] | None = None,
) -> None:
    """Raise a :class:`~.errors.ConsentNotSpecific` subclass unless ``record`` is specific.

    ``known_units`` (the units in the verified key directory), when given, refuses pairs
    naming a unit nobody can receive as: a consent to a mistyped unit names no real
    recipient. Also raises :class:`~.errors.ConsentRecorderNotParty` when the recording
    device's unit is not a party (a unit cannot manufacture consents between others).
    """
    if not record.covers_processing:
        raise ConsentProcessingNotCovered()
    _check_pairs(record, known_units)
    if record.recorded_by.unit not in record.parties:
        raise ConsentRecorderNotParty()
    vocab = policy.vocabulary
    _check_terms(
        record.categories,
        vocab.categories,
        ConsentNoCategories,
        ConsentUnknownCategory,
        "categories",
    )
    _check_terms(
        record.purposes, vocab.purposes, ConsentNoPurposes, ConsentUnknownPurpose, "purposes"
    )
    _check_window(record, now=now, policy=policy)
    _check_documented(record.form, record.evidence_hash, record.free_text_hash, "")
    if record.minor:
        # The police require the guardians' consent too for anyone under 18.
        if not record.guardians:
            raise ConsentGuardianMissing()
        for guardian in record.guardians:
            _check_guardian(guardian)


def _is_wildcard(term: str) -> bool:
    return term.strip().lower() in WILDCARD_TERMS or any(c in _WILDCARD_CHARS for c in term)


def _check_pairs(record: ConsentRecord, known_units: Collection[str] | None) -> None:
    if not record.pairs:
        raise ConsentNoPairs()
    for pair in record.pairs:
        for unit in (pair.from_unit, pair.to_unit):
            if _is_wildcard(unit):
                raise ConsentWildcard("a pair uses a wildcard instead of a unit")
            if not is_valid_name(unit) or unit in RESERVED_UNITS:
                raise ConsentUnknownUnit("a pair names a malformed or reserved unit")
            if known_units is not None and unit not in known_units:
                raise ConsentUnknownUnit("a pair names a unit that is not in the directory")
        if pair.from_unit == pair.to_unit:
            raise ConsentSelfPair()


def _check_terms(
    terms: tuple[str, ...],
    allowed: frozenset[str],
    empty: type[ConsentNoCategories | ConsentNoPurposes],
    unknown: type[ConsentUnknownCategory | ConsentUnknownPurpose],
    what: str,
) -> None:
    if not terms:
        raise empty()
    for term in terms:
        if _is_wildcard(term):
            raise ConsentWildcard(f"{what} use a wildcard instead of naming terms")
        if term not in allowed:
            raise unknown()
    # Naming every term is the general waiver the guideline forbids, just spelled out.
    if len(allowed) > 1 and set(terms) >= allowed:
        raise ConsentTooBroad(f"the consent lists every one of the {what}")


def add_months(ts: int, months: int) -> int:
    """``ts`` plus calendar months (UTC; the day is clamped: 31 Jan + 1 = 28/29 Feb)."""
    t = datetime.fromtimestamp(ts, UTC)
    index = t.month - 1 + months
    year, month = t.year + index // 12, index % 12 + 1
    day = min(t.day, calendar.monthrange(year, month)[1])
    return int(t.replace(year=year, month=month, day=day).timestamp())


def _check_window(record: ConsentRecord, *, now: int, policy: ConsentPolicy) -> None:
    if record.valid_until is None:
        raise ConsentNoEnd()
    if record.valid_until <= record.valid_from:
        raise ConsentWindowInvalid("the consent ends before it starts")
    if record.valid_until <= now:
        raise ConsentWindowInvalid("the consent has already ended")
    future = now + policy.clock_skew_s
    if record.obtained_at > future or record.created > future:
        raise ConsentWindowInvalid("the consent is obtained or recorded in the future")
    if record.obtained_at > record.created + policy.clock_skew_s:
        raise ConsentWindowInvalid("the consent is recorded before it was obtained")
    # Measured from the earlier of "obtained" and "valid from": a consent starting later
    # must not stretch the individual's decision beyond the maximum either.
    start = min(record.obtained_at, record.valid_from)
    if record.valid_until > add_months(start, policy.max_months):
        raise ConsentTooLong(f"the consent runs longer than {policy.max_months} months")


def _check_documented(
    form: str, evidence_hash: str | None, free_text_hash: str | None, who: str
) -> None:
    # The one who received the consent must be able to prove it: written ⇒ the signed
    # form's hash; oral ⇒ the hash of a witness and a note on when and how. The text
    # itself stays on the recording device (keys.crypto.consent_free_text.FreeText), so whether
    # both were written down is checked there, before signing; the gateway can only
    # require the commitment.
    if form == "written" and evidence_hash is None:
        raise ConsentEvidenceMissing(f"a written {who}consent needs the form's evidence hash")
    if form == "oral" and free_text_hash is None:
        raise ConsentWitnessMissing(
            f"an oral {who}consent needs the hash of its witness and note (free_text_hash)"
        )


def _check_guardian(guardian: GuardianConsent) -> None:
    _check_documented(guardian.form, guardian.evidence_hash, guardian.free_text_hash, "guardian's ")


def withdraw(
    consent: Consent,
    *,
    by_unit: str,
    reason: str,
    now: int,
    policy: ConsentPolicy,
    withdrawn_at: int | None = None,
) -> Consent:
    """Record a withdrawal by a party unit; returns the withdrawn consent.

    The individual is not a party and signs nothing; a party unit's device records the
    withdrawal with a reason *code* (free text would be case content at the gateway).
    ``withdrawn_at`` may be earlier than ``now`` (an oral withdrawal recorded later) but
    not in the future, and not before the consent was obtained. Withdrawing twice keeps
    the first withdrawal (idempotent: a retried request changes nothing).
    """
    if by_unit not in consent.parties:
        raise ConsentUnknown()  # the same answer as for a consent that does not exist
    if reason not in policy.vocabulary.withdrawal_reasons:
        raise ConsentWithdrawalInvalid("the withdrawal reason is not a known code")
    at = now if withdrawn_at is None else withdrawn_at
    if at > now + policy.clock_skew_s or at < consent.record.obtained_at:
        raise ConsentWithdrawalInvalid("the withdrawal time is impossible")
    if consent.withdrawn_at is not None:
        return consent
    return replace(consent, withdrawn_at=at, withdrawal_reason=reason)

"""Policy errors: every refusal of the pure domain core, with a stable code and status.

The gateway's registry (``keys/protocol/problems.py``) imports :data:`ALL_POLICY_ERRORS` and
renders each as ``application/problem+json``; the SDK maps the codes back to these
classes. Messages say which rule failed, never with what value: consents hold
pseudonyms and free text, and error texts end up in logs and dialogs.

Specificity (HTTP 422): every rule has its own code so a recording officer is told
exactly what to fix; all are subclasses of :class:`ConsentNotSpecific`
(``consent_not_specific``), so a caller can catch the family.

Refusals of a transfer (HTTP 403): subclasses of :class:`ConsentRefused`.
``consent_unknown`` is used both for "no such consent" and "you are not a party to it",
so a probing device learns nothing about consents of other units.
"""

from __future__ import annotations

from keys.errors import REGISTRY, StafettError


class PolicyError(StafettError):
    """Base class: the domain policy refused something."""

    code = "policy_refused"
    status = 400

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)


# --- specificity of a consent record (422) -------------------------------------------------
class ConsentNotSpecific(PolicyError):
    """The consent is not specific enough to be a consent."""

    code = "consent_not_specific"
    status = 422


class ConsentProcessingNotCovered(ConsentNotSpecific):
    """The consent does not cover the processing of the data (GDPR)."""

    code = "consent_processing_not_covered"


class ConsentNoPairs(ConsentNotSpecific):
    """The consent names no sending and receiving units."""

    code = "consent_no_pairs"


class ConsentWildcard(ConsentNotSpecific):
    """The consent uses a wildcard ("*", "all") instead of naming units, categories, purposes."""

    code = "consent_wildcard"


class ConsentUnknownUnit(ConsentNotSpecific):
    """The consent names a unit that is not a valid, known unit."""

    code = "consent_unknown_unit"


class ConsentSelfPair(ConsentNotSpecific):
    """The consent has a pair whose sender and recipient are the same unit."""

    code = "consent_self_pair"


class ConsentNoCategories(ConsentNotSpecific):
    """The consent names no information category."""

    code = "consent_no_categories"


class ConsentUnknownCategory(ConsentNotSpecific):
    """The consent names a category that is not in the controlled vocabulary."""

    code = "consent_unknown_category"


class ConsentNoPurposes(ConsentNotSpecific):
    """The consent names no purpose or situation."""

    code = "consent_no_purposes"


class ConsentUnknownPurpose(ConsentNotSpecific):
    """The consent names a purpose that is not in the controlled vocabulary."""

    code = "consent_unknown_purpose"


class ConsentTooBroad(ConsentNotSpecific):
    """The consent lists every category or every purpose: a general waiver, not a consent."""

    code = "consent_too_broad"


class ConsentNoEnd(ConsentNotSpecific):
    """The consent has no end date."""

    code = "consent_no_end"


class ConsentTooLong(ConsentNotSpecific):
    """The consent runs longer than the policy maximum."""

    code = "consent_too_long"


class ConsentWindowInvalid(ConsentNotSpecific):
    """The consent's times are inconsistent (ends before it starts, already ended, future)."""

    code = "consent_window_invalid"


class ConsentEvidenceMissing(ConsentNotSpecific):
    """A written consent has no evidence hash of the signed form."""

    code = "consent_evidence_missing"


class ConsentWitnessMissing(ConsentNotSpecific):
    """An oral consent carries no hash of its witness and note (``free_text_hash``).

    (The earlier ``consent_note_missing`` is gone: the text stays on the recording
    device, which checks that both were written down before it signs.)"""

    code = "consent_witness_missing"


class ConsentGuardianMissing(ConsentNotSpecific):
    """The individual is a minor and no guardian's consent is recorded."""

    code = "consent_guardian_missing"


class ConsentRecorderNotParty(PolicyError):
    """The recording device's unit is not a party to the consent it records."""

    code = "consent_recorder_not_party"
    status = 403


class ConsentWithdrawalInvalid(PolicyError):
    """The withdrawal is malformed: unknown reason code or an impossible time."""

    code = "consent_withdrawal_invalid"
    status = 422


# --- refusals of a transfer (403) ----------------------------------------------------------
class ConsentRefused(PolicyError):
    """No active consent covers this transfer."""

    code = "consent_refused"
    status = 403


class ConsentUnknown(ConsentRefused):
    """No such consent is known to the calling unit."""

    code = "consent_unknown"


class ConsentSubjectMismatch(ConsentRefused):
    """The consent is about another subject."""

    code = "consent_subject_mismatch"


class ConsentDirectionNotCovered(ConsentRefused):
    """The consent does not cover this sender → recipient direction."""

    code = "consent_direction_not_covered"


class ConsentCategoryNotCovered(ConsentRefused):
    """The consent does not cover this information category."""

    code = "consent_category_not_covered"


class ConsentPurposeNotCovered(ConsentRefused):
    """The consent does not cover this purpose."""

    code = "consent_purpose_not_covered"


class ConsentNotYetValid(ConsentRefused):
    """The consent is not valid yet."""

    code = "consent_not_yet_valid"


class ConsentExpired(ConsentRefused):
    """The consent has expired."""

    code = "consent_expired"


class ConsentWithdrawn(ConsentRefused):
    """The consent has been withdrawn."""

    code = "consent_withdrawn"


# --- message lifecycle ---------------------------------------------------------------------
class InvalidTransition(PolicyError):
    """The message is not in a state that allows this (e.g. a receipt after expiry)."""

    code = "message_state_conflict"
    status = 409


class TtlInvalid(PolicyError):
    """The requested expiry is in the past or beyond the policy maximum."""

    code = "ttl_invalid"
    status = 422


REFUSALS: dict[str, type[ConsentRefused]] = {
    code: cls
    for code, cls in REGISTRY.items()
    if issubclass(cls, ConsentRefused) and cls is not ConsentRefused
}
"""Refusals of a transfer by code (a view of the registry, not a second list)."""

ALL_POLICY_ERRORS: tuple[type[PolicyError], ...] = tuple(
    cls for cls in REGISTRY.values() if issubclass(cls, PolicyError)
)
"""Every policy error (a view of the registry)."""

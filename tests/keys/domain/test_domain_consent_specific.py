"""Every specificity rule of a consent record, one case (at least) per error code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from domain_factories import (
    DAY,
    EVIDENCE,
    FREE_TEXT_HASH,
    NOW,
    POLICY,
    draft,
    guardian,
    oral,
    record,
)

from keys.domain.consent import ConsentPolicy, add_months, check_specific
from keys.protocol import refusals as E
from keys.protocol.consent_record import parse_consent_record


def _check(obj: dict[str, Any], **kw: Any) -> None:
    check_specific(parse_consent_record(obj, require_sig=False), now=NOW, policy=POLICY, **kw)


def test_a_specific_written_consent_passes() -> None:
    _check(draft())


def test_a_documented_oral_consent_passes() -> None:
    _check(oral())


def test_a_minor_with_documented_guardians_passes() -> None:
    _check(
        draft(
            minor=True,
            guardians=[
                guardian(),
                guardian(form="oral", evidence_hash=None, free_text_hash=FREE_TEXT_HASH),
            ],
        )
    )


def test_known_units_accepts_pairs_within_the_directory() -> None:
    _check(draft(), known_units={"sav", "las-storgoteborg", "so-nordost"})


ALL_CATEGORIES = sorted(POLICY.vocabulary.categories)
ALL_PURPOSES = sorted(POLICY.vocabulary.purposes)
TWELVE_MONTHS = add_months(NOW - 7200, 12)

CASES: list[tuple[str, dict[str, Any], type[E.PolicyError]]] = [
    ("processing", draft(covers_processing=False), E.ConsentProcessingNotCovered),
    ("no pairs", draft(pairs=[]), E.ConsentNoPairs),
    ("star unit", draft(pairs=[{"from": "sav", "to": "*"}]), E.ConsentWildcard),
    ("glob unit", draft(pairs=[{"from": "sav", "to": "so-*"}]), E.ConsentWildcard),
    ("alla", draft(pairs=[{"from": "alla", "to": "sav"}]), E.ConsentWildcard),
    ("ALL", draft(pairs=[{"from": "sav", "to": "ALL"}]), E.ConsentWildcard),
    ("upper-case unit", draft(pairs=[{"from": "sav", "to": "So-Nordost"}]), E.ConsentUnknownUnit),
    ("empty unit", draft(pairs=[{"from": "sav", "to": ""}]), E.ConsentUnknownUnit),
    ("admin unit", draft(pairs=[{"from": "sav", "to": "admin"}]), E.ConsentUnknownUnit),
    ("self pair", draft(pairs=[{"from": "sav", "to": "sav"}]), E.ConsentSelfPair),
    (
        "recorder not a party",
        draft(pairs=[{"from": "so-nordost", "to": "las-storgoteborg"}]),
        E.ConsentRecorderNotParty,
    ),
    ("no categories", draft(categories=[]), E.ConsentNoCategories),
    ("star category", draft(categories=["*"]), E.ConsentWildcard),
    ("all category", draft(categories=["application", "all"]), E.ConsentWildcard),
    ("unknown category", draft(categories=["gossip"]), E.ConsentUnknownCategory),
    ("every category", draft(categories=ALL_CATEGORIES), E.ConsentTooBroad),
    ("no purposes", draft(purposes=[]), E.ConsentNoPurposes),
    ("samtliga purpose", draft(purposes=["samtliga"]), E.ConsentWildcard),
    ("unknown purpose", draft(purposes=["surveillance"]), E.ConsentUnknownPurpose),
    ("every purpose", draft(purposes=ALL_PURPOSES), E.ConsentTooBroad),
    ("no end", draft(valid_until=None), E.ConsentNoEnd),
    (
        "ends before start",
        draft(valid_from=NOW + DAY, valid_until=NOW + DAY),
        E.ConsentWindowInvalid,
    ),
    ("already ended", draft(valid_from=NOW - 9 * DAY, valid_until=NOW), E.ConsentWindowInvalid),
    ("obtained in future", draft(obtained_at=NOW + 3600, created=NOW), E.ConsentWindowInvalid),
    ("created in future", draft(created=NOW + 3600), E.ConsentWindowInvalid),
    (
        "recorded before obtained",
        draft(obtained_at=NOW, created=NOW - 3600),
        E.ConsentWindowInvalid,
    ),
    ("13 months", draft(valid_until=add_months(NOW - 7200, 13)), E.ConsentTooLong),
    ("one second too long", draft(valid_until=TWELVE_MONTHS + 1), E.ConsentTooLong),
    (
        "late start stretches",
        draft(valid_from=NOW + 60 * DAY, valid_until=add_months(NOW + 60 * DAY, 12)),
        E.ConsentTooLong,
    ),
    ("written without evidence", draft(evidence_hash=None), E.ConsentEvidenceMissing),
    ("oral without the free-text hash", oral(free_text_hash=None), E.ConsentWitnessMissing),
    ("minor without guardians", draft(minor=True), E.ConsentGuardianMissing),
    (
        "guardian without evidence",
        draft(minor=True, guardians=[guardian(evidence_hash=None)]),
        E.ConsentEvidenceMissing,
    ),
    (
        "oral guardian without the free-text hash",
        draft(minor=True, guardians=[guardian(form="oral", evidence_hash=None)]),
        E.ConsentWitnessMissing,
    ),
]


@pytest.mark.parametrize(("obj", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_refuses_with_its_own_code(
    obj: dict[str, Any], error: type[E.PolicyError]
) -> None:
    with pytest.raises(error) as info:
        _check(obj)
    assert type(info.value) is error
    assert info.value.code == error.code


def test_every_specificity_code_is_exercised() -> None:
    # Exhaustive by construction: a new rule without a test case fails here.
    specific = {c for c in E.ALL_POLICY_ERRORS if issubclass(c, E.ConsentNotSpecific)}
    specific.discard(E.ConsentNotSpecific)
    exercised = {c[2] for c in CASES}
    assert specific <= exercised
    assert E.ConsentRecorderNotParty in exercised


def test_specificity_errors_are_422_and_one_family() -> None:
    for cls in E.ALL_POLICY_ERRORS:
        if issubclass(cls, E.ConsentNotSpecific):
            assert cls.status == 422
    assert E.ConsentRecorderNotParty.status == 403


def test_unit_not_in_directory_is_unknown() -> None:
    with pytest.raises(E.ConsentUnknownUnit):
        _check(draft(), known_units={"sav"})


def test_exactly_the_maximum_is_allowed() -> None:
    _check(draft(valid_until=TWELVE_MONTHS))


def test_a_shorter_policy_maximum_is_enforced() -> None:
    short = ConsentPolicy(POLICY.vocabulary, max_months=1)
    rec = record(valid_until=NOW + 40 * DAY)
    with pytest.raises(E.ConsentTooLong):
        check_specific(rec, now=NOW, policy=short)
    check_specific(record(valid_until=NOW + 20 * DAY), now=NOW, policy=short)


def test_clock_skew_tolerates_a_slightly_fast_device() -> None:
    _check(draft(created=NOW + 60, obtained_at=NOW + 30))


def test_oral_consent_may_also_carry_evidence() -> None:
    _check(oral(evidence_hash=EVIDENCE))


def test_all_but_one_category_is_still_specific() -> None:
    _check(draft(categories=ALL_CATEGORIES[:-1]))


def test_error_messages_never_repeat_values() -> None:
    secret_unit = "so-hemlig"
    with pytest.raises(E.ConsentUnknownUnit) as info:
        _check(draft(pairs=[{"from": "sav", "to": secret_unit}]), known_units={"sav"})
    assert secret_unit not in str(info.value)
    with pytest.raises(E.ConsentUnknownCategory) as info2:
        _check(draft(categories=["namn_och_adress"]))
    assert "namn_och_adress" not in str(info2.value)


def _ts(y: int, m: int, d: int) -> int:
    return int(datetime(y, m, d, 12, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (_ts(2024, 1, 31), 1, _ts(2024, 2, 29)),  # clamped to a leap day
        (_ts(2025, 1, 31), 1, _ts(2025, 2, 28)),
        (_ts(2025, 3, 15), 12, _ts(2026, 3, 15)),
        (_ts(2025, 11, 30), 3, _ts(2026, 2, 28)),
        (_ts(2024, 2, 29), 12, _ts(2025, 2, 28)),
    ],
)
def test_add_months(start: int, months: int, end: int) -> None:
    assert add_months(start, months) == end

"""The consent decision: every refusal code, boundaries, withdrawal, and a property test."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jsonschema
import pytest
from domain_factories import (
    CONSENT_ID,
    DAY,
    NOW,
    OTHER_SUBJECT,
    POLICY,
    SUBJECT,
    consent,
    load_schema,
    record,
)
from hypothesis import event, given, settings
from hypothesis import strategies as st

from keys.crypto.keypairs import DeviceId, KeyId
from keys.domain.consent import Consent, Decision, decide, withdraw
from keys.protocol import refusals as E
from keys.protocol.consent_record import ConsentPair, ConsentRecord

REQUEST: dict[str, Any] = {
    "sender_unit": "sav",
    "recipient_unit": "las-storgoteborg",
    "subject_ref": SUBJECT,
    "category": "threat_assessment",
    "purpose": "initial_threat_assessment",
    "now": NOW,
}


def _decide(c: Consent | None, **changes: Any) -> Decision:
    return decide(c, **{**REQUEST, **changes})


def test_a_covered_request_is_accepted_and_stamped() -> None:
    d = _decide(replace(consent(), version=3))
    assert d.accepted
    assert d == Decision(None, CONSENT_ID, 3)
    d.raise_for_refusal()  # no-op when accepted


def test_the_reverse_direction_is_covered_only_because_it_is_named() -> None:
    assert _decide(consent(), sender_unit="las-storgoteborg", recipient_unit="sav").accepted
    one_way = consent(pairs=[{"from": "sav", "to": "las-storgoteborg"}])
    d = _decide(one_way, sender_unit="las-storgoteborg", recipient_unit="sav")
    assert d.code == "consent_direction_not_covered"


REFUSALS: list[tuple[str, Consent | None, dict[str, Any], str]] = [
    ("no consent", None, {}, "consent_unknown"),
    ("sender not a party", consent(), {"sender_unit": "so-nordost"}, "consent_unknown"),
    ("other subject", consent(), {"subject_ref": OTHER_SUBJECT}, "consent_subject_mismatch"),
    (
        "other recipient",
        consent(),
        {"recipient_unit": "so-nordost"},
        "consent_direction_not_covered",
    ),
    (
        "other category",
        consent(),
        {"category": "report_of_concern"},
        "consent_category_not_covered",
    ),
    ("other purpose", consent(), {"purpose": "advice"}, "consent_purpose_not_covered"),
    ("before start", consent(valid_from=NOW + 1), {}, "consent_not_yet_valid"),
    ("at the end", consent(valid_until=NOW), {}, "consent_expired"),
    (
        "after the end",
        consent(valid_until=NOW - DAY, valid_from=NOW - 9 * DAY),
        {},
        "consent_expired",
    ),
    ("open end (never stored)", consent(valid_until=None), {}, "consent_expired"),
    ("withdrawn", replace(consent(), withdrawn_at=NOW - 1), {}, "consent_withdrawn"),
    (
        "withdrawal dated later",
        replace(consent(), withdrawn_at=NOW + DAY),
        {},
        "consent_withdrawn",
    ),
]


@pytest.mark.parametrize(
    ("c", "changes", "code"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_each_refusal_code(c: Consent | None, changes: dict[str, Any], code: str) -> None:
    d = _decide(c, **changes)
    assert not d.accepted
    assert d.code == code
    assert d.consent_id is None  # a refusal never echoes which consent was looked at
    with pytest.raises(E.REFUSALS[code]) as info:
        d.raise_for_refusal()
    assert info.value.code == code
    assert info.value.status == 403


def test_every_refusal_code_is_exercised() -> None:
    assert {r[3] for r in REFUSALS} == set(E.REFUSALS)


def test_a_foreign_consent_looks_exactly_like_no_consent() -> None:
    # Whatever the foreign consent says (other subject, withdrawn, expired), a unit that
    # is not a party gets the same answer as for an id that does not exist.
    foreign = [
        consent(),
        consent(subject_ref=OTHER_SUBJECT),
        replace(consent(), withdrawn_at=NOW - 1),
        consent(valid_until=NOW - 1, valid_from=NOW - DAY),
    ]
    for c in foreign:
        assert _decide(c, sender_unit="so-nordost") == _decide(None, sender_unit="so-nordost")


def test_a_party_that_only_receives_cannot_send() -> None:
    c = consent(pairs=[{"from": "sav", "to": "las-storgoteborg"}])
    d = _decide(c, sender_unit="las-storgoteborg", recipient_unit="so-nordost")
    assert d.code == "consent_direction_not_covered"


def test_withdrawal_wins_over_every_other_reason() -> None:
    c = replace(consent(valid_from=NOW + 1), withdrawn_at=NOW)
    assert _decide(c, category="report_of_concern").code == "consent_withdrawn"


# --- withdrawal -----------------------------------------------------------------------------
def test_withdraw_by_a_party_stops_later_sends() -> None:
    c = withdraw(
        consent(), by_unit="las-storgoteborg", reason="subject_withdrew", now=NOW, policy=POLICY
    )
    assert c.withdrawn_at == NOW
    assert c.withdrawal_reason == "subject_withdrew"
    assert not c.is_active(NOW)
    assert _decide(c).code == "consent_withdrawn"


def test_withdraw_may_be_backdated_but_not_before_it_was_obtained() -> None:
    c = withdraw(
        consent(),
        by_unit="sav",
        reason="subject_withdrew",
        now=NOW,
        policy=POLICY,
        withdrawn_at=NOW - 3600,
    )
    assert c.withdrawn_at == NOW - 3600
    with pytest.raises(E.ConsentWithdrawalInvalid):
        withdraw(
            consent(),
            by_unit="sav",
            reason="subject_withdrew",
            now=NOW,
            policy=POLICY,
            withdrawn_at=NOW - 7201,
        )


def test_withdraw_in_the_future_is_refused() -> None:
    with pytest.raises(E.ConsentWithdrawalInvalid):
        withdraw(
            consent(),
            by_unit="sav",
            reason="subject_withdrew",
            now=NOW,
            policy=POLICY,
            withdrawn_at=NOW + DAY,
        )


def test_withdraw_needs_a_known_reason_code() -> None:
    with pytest.raises(E.ConsentWithdrawalInvalid) as info:
        withdraw(consent(), by_unit="sav", reason="hon ångrade sig", now=NOW, policy=POLICY)
    assert "ångrade" not in str(info.value)
    assert info.value.status == 422


def test_withdraw_by_a_non_party_looks_like_an_unknown_consent() -> None:
    with pytest.raises(E.ConsentUnknown):
        withdraw(consent(), by_unit="so-nordost", reason="subject_withdrew", now=NOW, policy=POLICY)


def test_withdraw_twice_keeps_the_first() -> None:
    first = withdraw(consent(), by_unit="sav", reason="subject_withdrew", now=NOW, policy=POLICY)
    again = withdraw(
        first, by_unit="las-storgoteborg", reason="case_closed", now=NOW + 99, policy=POLICY
    )
    assert again == first


# --- the invariant, by property ---------------------------------------------------------------
UNITS = ["sav", "so-nordost", "socialjour", "las-a"]
CATEGORIES = ["application", "threat_assessment", "report_of_concern"]
PURPOSES = ["advice", "transfer_to_sav", "initial_threat_assessment"]
SUBJECTS = [SUBJECT, OTHER_SUBJECT]

times = st.integers(min_value=0, max_value=100)


@st.composite
def consents(draw: st.DrawFn) -> Consent | None:
    if draw(st.integers(0, 9)) == 9:
        return None
    # Hypothesis favours small values (0, empty sets): conditions below are written so
    # that the common case is a consent that could accept something.
    pairs = draw(st.sets(st.tuples(st.sampled_from(UNITS), st.sampled_from(UNITS)), max_size=5))
    rec = ConsentRecord(
        consent_id=CONSENT_ID,
        subject_ref=draw(st.sampled_from(SUBJECTS)),
        pairs=tuple(ConsentPair(a, b) for a, b in sorted(pairs)),
        categories=tuple(draw(st.sets(st.sampled_from(CATEGORIES)))),
        purposes=tuple(draw(st.sets(st.sampled_from(PURPOSES)))),
        valid_from=(start := draw(times)),
        # mostly a proper window; sometimes empty, inverted or (never stored) open
        valid_until=None if draw(st.integers(0, 9)) == 9 else start + 60 - draw(st.integers(0, 65)),
        form="written",
        evidence_hash=None,
        free_text_hash=None,
        obtained_by=DeviceId("sav", "anna"),
        obtained_at=0,
        minor=False,
        guardians=(),
        covers_processing=True,
        recorded_by=KeyId("sav", "anna", 1),
        created=0,
    )
    withdrawn_at = draw(times) if draw(st.integers(0, 4)) == 4 else None
    return Consent(rec, version=draw(st.integers(1, 3)), withdrawn_at=withdrawn_at)


def moments(c: Consent) -> st.SearchStrategy[int]:
    """Times around the consent's window, with its edges (where off-by-ones live)."""
    r = c.record
    edges = [r.valid_from - 1, r.valid_from]
    if r.valid_until is not None:
        edges += [r.valid_until - 1, r.valid_until]
    if c.withdrawn_at is not None:
        edges += [c.withdrawn_at - 1, c.withdrawn_at]
    return st.integers(r.valid_from - 3, r.valid_from + 60) | st.sampled_from(edges)


@st.composite
def requests_for(draw: st.DrawFn, c: Consent | None) -> dict[str, Any]:
    """A request; half the time built from what the consent names, so that accepted
    cases are common enough for the "covered ⇒ accepted" direction to be exercised."""
    near = c is not None and draw(st.integers(0, 3)) < 3

    def pick(options: list[str], named: tuple[str, ...]) -> str:
        return draw(st.sampled_from(list(named) if near and named else options))

    pairs = [(p.from_unit, p.to_unit) for p in c.record.pairs] if c is not None else []
    if near and pairs:
        sender, recipient = draw(st.sampled_from(pairs))
    else:
        sender, recipient = draw(st.sampled_from(UNITS)), draw(st.sampled_from(UNITS))
    return {
        "sender_unit": sender,
        "recipient_unit": recipient,
        "subject_ref": pick(SUBJECTS, (c.record.subject_ref,) if c is not None else ()),
        "category": pick(CATEGORIES, c.record.categories if c is not None else ()),
        "purpose": pick(PURPOSES, c.record.purposes if c is not None else ()),
        "now": draw(moments(c) if near and c is not None else st.integers(0, 170)),
    }


@st.composite
def cases(draw: st.DrawFn) -> tuple[Consent | None, dict[str, Any]]:
    c = draw(consents())
    return c, draw(requests_for(c))


def _covered(c: Consent, req: dict[str, Any]) -> bool:
    r = c.record
    return (
        r.subject_ref == req["subject_ref"]
        and ConsentPair(req["sender_unit"], req["recipient_unit"]) in r.pairs
        and req["category"] in r.categories
        and req["purpose"] in r.purposes
    )


def _active(c: Consent, now: int) -> bool:
    r = c.record
    return (
        c.withdrawn_at is None and r.valid_until is not None and r.valid_from <= now < r.valid_until
    )


@settings(max_examples=400, deadline=None)
@given(cases())
def test_accepted_exactly_when_covered_by_an_active_consent(
    case: tuple[Consent | None, dict[str, Any]],
) -> None:
    c, req = case
    d = decide(c, **req)
    expected = c is not None and _covered(c, req) and _active(c, req["now"])
    # accepted ⇒ covered and active; covered and active ⇒ accepted
    assert d.accepted == expected
    event("accepted" if d.accepted else f"refused: {d.code}")
    if d.accepted:
        assert c is not None
        assert d.consent_id == c.consent_id
        assert d.consent_version == c.version
        return
    assert d.code in E.REFUSALS
    assert d.consent_id is None
    # The code tells the truth about the reason (a party is never misled) …
    if c is None or req["sender_unit"] not in c.record.parties:
        assert d.code == "consent_unknown"
        assert d == decide(None, **req)  # … and a non-party learns nothing
        return
    r = c.record
    truths = {
        "consent_subject_mismatch": r.subject_ref != req["subject_ref"],
        "consent_withdrawn": c.withdrawn_at is not None,
        "consent_not_yet_valid": req["now"] < r.valid_from,
        "consent_expired": r.valid_until is None or req["now"] >= r.valid_until,
        "consent_direction_not_covered": ConsentPair(req["sender_unit"], req["recipient_unit"])
        not in r.pairs,
        "consent_category_not_covered": req["category"] not in r.categories,
        "consent_purpose_not_covered": req["purpose"] not in r.purposes,
    }
    assert d.code is not None
    assert truths[d.code]


def test_decide_ignores_record_fields_it_must_not_depend_on() -> None:
    # The decision is a function of pairs, categories, purposes, subject, window and
    # withdrawal only: who recorded it or how does not widen or narrow a transfer.
    base = _decide(Consent(record()))
    other = _decide(Consent(record(recorded_by="las-storgoteborg/x/2", minor=True)))
    assert base == other


def test_withdrawal_request_schema() -> None:
    schema = load_schema("consent-withdrawal.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    v.validate({"reason": "subject_withdrew"})
    v.validate({"reason": "subject_withdrew", "withdrawn_at": NOW})
    for bad in ({}, {"reason": "Hon ångrade sig"}, {"reason": "case_closed", "note": "x"}):
        assert not v.is_valid(bad)

"""The consent registry through the API, on both stores: record, specificity, visibility,
withdrawal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keys.crypto.canonical import b64e
from keys.protocol.consent_record import signed_bytes
from tests.support.factories import DAY, EVIDENCE, OTHER_SUBJECT, SUBJECT
from tests.support.gateway import assert_problem
from tests.support.messages import (
    ANNA,
    BERTIL,
    BO,
    LAS,
    LISA,
    add_las_unit,
    audit_events,
    consent_draft,
    now,
    record_consent,
    signed_consent,
)

CONSENTS = "/v1/consents"
FREE_TEXT_HASH = "12" * 32


@pytest.mark.asyncio
async def test_record_is_idempotent_and_audited(gateway) -> None:
    record = signed_consent(gateway)
    anna = gateway.client(ANNA)
    reply = await anna.post(CONSENTS, record)
    assert reply.status == 201, reply.body
    assert reply.json() == {"consent_id": record["consent_id"], "version": 1}
    # The same record again: the same answer, nothing new stored.
    again = await anna.post(CONSENTS, record)
    assert again.status == 200
    assert again.json() == reply.json()
    # A different record under the same id is a conflict, not an overwrite.
    wider = signed_consent(
        gateway, consent_id=record["consent_id"], valid_until=record["valid_until"] + DAY
    )
    assert_problem(await anna.post(CONSENTS, wider), 409, "consent_conflict")
    recorded = [json.loads(d) for e, d in await audit_events(gateway) if e == "consent_recorded"]
    assert len(recorded) == 1
    assert recorded[0]["consent_id"] == record["consent_id"]
    assert recorded[0]["subject_ref"] == SUBJECT
    shown = (await anna.get(f"{CONSENTS}/{record['consent_id']}")).json()
    assert shown["status"] == "active"
    assert shown["record"] == record


def _specificity_cases() -> list[tuple[str, dict[str, Any], str]]:
    t = now()
    oral = {"form": "oral", "evidence_hash": None, "free_text_hash": FREE_TEXT_HASH}
    guardian = {"form": "written", "evidence_hash": EVIDENCE, "free_text_hash": None}
    return [
        ("no pairs", {"pairs": []}, "consent_no_pairs"),
        ("wildcard unit", {"pairs": [{"from": "so-nordost", "to": "*"}]}, "consent_wildcard"),
        ("all units", {"pairs": [{"from": "so-nordost", "to": "all"}]}, "consent_wildcard"),
        (
            "unit not in directory",
            {"pairs": [{"from": "so-nordost", "to": "so-hisingen"}]},
            "consent_unknown_unit",
        ),
        ("self pair", {"pairs": [{"from": "so-nordost", "to": "so-nordost"}]}, "consent_self_pair"),
        ("no category", {"categories": []}, "consent_no_categories"),
        ("unlisted category", {"categories": ["everything_about_x"]}, "consent_unknown_category"),
        ("wildcard category", {"categories": ["*"]}, "consent_wildcard"),
        ("no purpose", {"purposes": []}, "consent_no_purposes"),
        ("unlisted purpose", {"purposes": ["any_purpose_x"]}, "consent_unknown_purpose"),
        ("no end date", {"valid_until": None}, "consent_no_end"),
        ("longer than 12 months", {"valid_until": t + 400 * DAY}, "consent_too_long"),
        ("already ended", {"valid_until": t - 60}, "consent_window_invalid"),
        ("written without evidence", {"evidence_hash": None}, "consent_evidence_missing"),
        (
            "oral without its free-text hash",
            {**oral, "free_text_hash": None},
            "consent_witness_missing",
        ),
        ("minor without guardian", {"minor": True}, "consent_guardian_missing"),
        (
            "guardian undocumented",
            {"minor": True, "guardians": [{**guardian, "evidence_hash": None}]},
            "consent_evidence_missing",
        ),
        ("processing not covered", {"covers_processing": False}, "consent_processing_not_covered"),
    ]


@pytest.mark.asyncio
async def test_every_specificity_rule_is_enforced_by_the_endpoint(gateway) -> None:
    anna = gateway.client(ANNA)
    for name, changes, code in _specificity_cases():
        reply = await anna.post(CONSENTS, signed_consent(gateway, **changes))
        assert reply.status == 422, (name, reply.body)
        assert reply.json()["code"] == code, name
    # Oral with the hash of its witness and note, and a minor with a documented
    # guardian, are consents.
    await record_consent(gateway, form="oral", evidence_hash=None, free_text_hash=FREE_TEXT_HASH)
    await record_consent(
        gateway,
        subject_ref=OTHER_SUBJECT,  # not a repeat of the oral consent just recorded
        minor=True,
        guardians=[{"form": "written", "evidence_hash": EVIDENCE, "free_text_hash": None}],
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("where", "code"), [("record", "unknown_field"), ("guardian", "consent_record_invalid")]
)
async def test_a_record_with_clear_free_text_is_refused(gateway, where: str, code: str) -> None:
    """The earlier format's clear witness/note is refused even when validly signed:
    free text must not reach the gateway (only its salted hash)."""
    draft = consent_draft(form="oral", evidence_hash=None, free_text_hash=FREE_TEXT_HASH)
    if where == "record":
        draft.update(witness="Bertil Berg", note="Vid mote kl 10")
    else:
        draft.update(
            minor=True,
            guardians=[
                {"form": "oral", "evidence_hash": None, "free_text_hash": FREE_TEXT_HASH}
                | {"witness": "Bertil Berg", "note": "Vid mote kl 10"}
            ],
        )
    # Signed by hand: sign_consent_record itself refuses such a draft.
    draft["sig"] = b64e(gateway.devices[ANNA].signing_key.sign(signed_bytes(draft)))
    reply = await gateway.client(ANNA).post(CONSENTS, draft)
    assert reply.json()["code"] == code, reply.body
    assert b"Bertil" not in reply.body
    assert not [e for e, _ in await audit_events(gateway) if e == "consent_recorded"]


@pytest.mark.asyncio
async def test_policy_maximum_comes_from_settings(start) -> None:
    gw = await start(max_consent_months=3)
    anna = gw.client(ANNA)
    too_long = signed_consent(gw, valid_until=now() + 120 * DAY)
    assert_problem(await anna.post(CONSENTS, too_long), 422, "consent_too_long")
    assert (
        await anna.post(CONSENTS, signed_consent(gw, valid_until=now() + 60 * DAY))
    ).status == 201


@pytest.mark.asyncio
async def test_signature_and_recorder_are_checked(gateway) -> None:
    anna = gateway.client(ANNA)
    record = signed_consent(gateway)
    record["valid_until"] += DAY  # widened after signing
    assert_problem(await anna.post(CONSENTS, record), 422, "consent_signature_invalid")
    # Signed by SAV's device but uploaded by so-nordost: a unit registers its own records.
    sav_record = signed_consent(gateway, recorded_by=BO, obtained_by="sav/bo")
    assert_problem(await anna.post(CONSENTS, sav_record), 403, "forbidden")
    # The recorder's unit must be a party (no manufacturing consents between others).
    await add_las_unit(gateway)
    between_others = signed_consent(
        gateway,
        recorded_by=ANNA,
        pairs=[{"from": "sav", "to": LAS}],
    )
    assert_problem(await anna.post(CONSENTS, between_others), 403, "consent_recorder_not_party")
    assert_problem(await anna.post(CONSENTS, {"v": 1}), 400, "field_missing")


@pytest.mark.asyncio
async def test_listing_only_to_party_units(gateway) -> None:
    await add_las_unit(gateway)
    ours = await record_consent(gateway)  # so-nordost <-> sav
    police = await record_consent(
        gateway,
        recorded_by=BO,
        obtained_by="sav/bo",
        pairs=[{"from": "sav", "to": LAS}],
        categories=["application"],
        purposes=["initial_threat_assessment"],
    )
    other_person = await record_consent(gateway, subject_ref="cd" * 32)

    async def listed(kid: str) -> list[str]:
        reply = await gateway.client(kid).get(f"{CONSENTS}?subject_ref={SUBJECT}")
        assert reply.status == 200, reply.body
        return sorted(c["consent_id"] for c in reply.json()["consents"])

    assert await listed(ANNA) == [ours["consent_id"]]  # not the police consent
    assert await listed(BERTIL) == [ours["consent_id"]]
    assert await listed(BO) == sorted([ours["consent_id"], police["consent_id"]])
    assert await listed(LISA) == [police["consent_id"]]
    assert other_person["consent_id"] not in await listed(BO)

    # A foreign consent does not exist for a non-party: same answer as an unknown id.
    anna = gateway.client(ANNA)
    assert_problem(await anna.get(f"{CONSENTS}/{police['consent_id']}"), 403, "consent_unknown")
    assert_problem(
        await anna.get(f"{CONSENTS}/00000000-0000-4000-8000-000000000000"), 403, "consent_unknown"
    )
    assert (await gateway.client(LISA).get(f"{CONSENTS}/{police['consent_id']}")).status == 200
    reads = [json.loads(d) for e, d in await audit_events(gateway) if e == "consent_read"]
    assert reads == [{"kid": LISA, "consent_id": police["consent_id"]}]  # refusals: not reads
    assert_problem(await anna.get(f"{CONSENTS}?subject_ref=ABC"), 400, "field_invalid")
    assert_problem(await anna.get(CONSENTS), 400, "field_invalid")
    lookups = [json.loads(d) for e, d in await audit_events(gateway) if e == "consents_listed"]
    assert {"kid": LISA, "count": 1, "subject_ref": SUBJECT} in lookups


@pytest.mark.asyncio
async def test_withdraw_by_any_party_unit_not_by_others(gateway) -> None:
    await add_las_unit(gateway)
    record = await record_consent(gateway)  # recorded by so-nordost
    path = f"{CONSENTS}/{record['consent_id']}/withdraw"
    # A non-party cannot even learn that the consent exists.
    lisa = gateway.client(LISA)
    assert_problem(await lisa.post(path, {"reason": "subject_withdrew"}), 403, "consent_unknown")
    bo = gateway.client(BO)
    assert_problem(
        await bo.post(path, {"reason": "she said so in a meeting"}),
        422,
        "consent_withdrawal_invalid",
    )
    assert_problem(
        await bo.post(path, {"reason": "subject_withdrew", "withdrawn_at": now() + DAY}),
        422,
        "consent_withdrawal_invalid",
    )
    assert_problem(await bo.post(path, {"reason": "x", "extra": 1}), 400, "unknown_field")
    at = now() - 600  # an oral withdrawal registered a little later
    reply = await bo.post(path, {"reason": "subject_withdrew", "withdrawn_at": at})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["status"] == "withdrawn"
    assert body["withdrawn_at"] == at
    assert body["withdrawal_reason"] == "subject_withdrew"
    assert body["messages_withdrawn"] == 0
    # Repeating it keeps the first withdrawal.
    again = await gateway.client(ANNA).post(path, {"reason": "case_closed"})
    assert again.status == 200
    assert again.json()["withdrawal_reason"] == "subject_withdrew"
    withdrawn = [json.loads(d) for e, d in await audit_events(gateway) if e == "consent_withdrawn"]
    assert len(withdrawn) == 1
    assert withdrawn[0]["kid"] == BO

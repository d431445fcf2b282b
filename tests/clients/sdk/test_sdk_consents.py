"""Consents through the SDK, and every consent refusal of a send as its own class."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date
from typing import Any

import pytest

from clients.sdk import StafettClient
from keys.crypto.keypairs import DeviceKeyPair, KeyId, SigningKey
from keys.crypto.keystore import Keystore
from keys.crypto.subject import parse_personnummer, subject_reference
from keys.errors import SubjectIdInvalid
from keys.protocol.refusals import (
    ConsentCategoryNotCovered,
    ConsentDirectionNotCovered,
    ConsentExpired,
    ConsentNoEnd,
    ConsentNotYetValid,
    ConsentPurposeNotCovered,
    ConsentSubjectMismatch,
    ConsentUnknown,
    ConsentWithdrawn,
)
from tests.support.gateway import RunningGateway
from tests.support.sdk import (
    ANNA,
    BO,
    DAY,
    OTHER_SUBJECT,
    SUBJECT,
    blob_files,
    client,
    consent_fields,
    enrol_unit,
    sql,
)

FORWARD = [("so-nordost", "sav")]


@pytest.mark.asyncio
async def test_record_list_get_and_withdraw(gateway: RunningGateway) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await anna.record_consent(consent_fields(ANNA, FORWARD))
        listed = await bo.list_consents(SUBJECT)  # the other party sees it too
        assert consent_id in [c.get("consent_id") for c in listed]
        assert await anna.list_consents(OTHER_SUBJECT) == []
        got = await bo.get_consent(consent_id)
        assert got["consent_id"] == consent_id
        await bo.withdraw_consent(consent_id, "subject_withdrew")
        after = await anna.get_consent(consent_id)
        assert after.get("withdrawn_at") is not None or after.get("status") == "withdrawn"


@pytest.mark.asyncio
async def test_a_consent_without_an_end_is_not_recorded(gateway: RunningGateway) -> None:
    async with client(gateway, ANNA) as anna:
        with pytest.raises(ConsentNoEnd):
            await anna.record_consent(consent_fields(ANNA, FORWARD, valid_until=None))


def _send_args(consent_id: str, **changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "recipient_unit": "sav",
        "consent_id": consent_id,
        "subject_ref": SUBJECT,
        "category": "case_transfer",
        "purpose": "transfer_to_district",
        "body": b"overflyttning: ansokan och hotbildsbedomning",
        "expires_in_s": 3600,
    }
    args.update(changes)
    return args


# case → (consent changes, send changes, expected refusal)
REFUSALS: dict[str, tuple[dict[str, Any], dict[str, Any], type[Exception]]] = {
    # First: a later, shorter consent like an active one would be answered as a repeat.
    "expired": ({"valid_until_in": 2}, {}, ConsentExpired),
    "wrong_subject": ({}, {"subject_ref": OTHER_SUBJECT}, ConsentSubjectMismatch),
    "wrong_direction": ({"pairs": [("sav", "so-nordost")]}, {}, ConsentDirectionNotCovered),
    "unlisted_category": ({}, {"category": "threat_assessment"}, ConsentCategoryNotCovered),
    "unlisted_purpose": ({}, {"purpose": "advice"}, ConsentPurposeNotCovered),
    "not_yet_valid": ({"valid_from_in": DAY}, {}, ConsentNotYetValid),
    "withdrawn": ({"withdraw": True}, {}, ConsentWithdrawn),
    "unknown_id": ({"unknown": True}, {}, ConsentUnknown),
    "foreign_id": ({"foreign": True}, {"recipient_unit": "socialjour"}, ConsentUnknown),
}


@pytest.mark.asyncio
async def test_every_consent_refusal_of_a_send(gateway: RunningGateway) -> None:
    """One gateway per store for all cases (a PostgreSQL database costs ~1.5 s); each
    case has its own consent, and after each nothing may have been kept."""
    await enrol_unit(gateway, "socialjour", "socialjour", "sigrid")
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_ids: dict[str, str] = {}
        latest_end = 0
        for index, (case, (consent_changes, _, _)) in enumerate(REFUSALS.items()):
            # Each case's consent ends days after the previous one's: otherwise the
            # gateway answers a repeat with the first consent instead of storing it.
            changes: dict[str, Any] = {"valid_until": int(time.time()) + (30 + 2 * index) * DAY}
            changes.update(consent_changes)
            pairs = changes.pop("pairs", FORWARD)
            recorder = anna
            if "valid_from_in" in changes:
                changes["valid_from"] = int(time.time()) + changes.pop("valid_from_in")
            if "valid_until_in" in changes:
                changes["valid_until"] = int(time.time()) + changes.pop("valid_until_in")
                latest_end = changes["valid_until"]
            if changes.pop("foreign", False):
                # Between sav and socialjour: so-nordost is no party to it and must not
                # learn it exists (the same answer as for an id nobody recorded).
                recorder, pairs = bo, [("sav", "socialjour")]
            withdraw = changes.pop("withdraw", False)
            unknown = changes.pop("unknown", False)
            kid = ANNA if recorder is anna else BO
            consent_id = await recorder.record_consent(consent_fields(kid, pairs, **changes))
            if withdraw:
                await bo.withdraw_consent(consent_id, "subject_withdrew")
            consent_ids[case] = str(uuid.uuid4()) if unknown else consent_id
        await asyncio.sleep(max(0.0, latest_end - time.time() + 0.2))
        for case, (_, send_changes, expected) in REFUSALS.items():
            with pytest.raises(expected):
                await anna.send(**_send_args(consent_ids[case], **send_changes))
            await _nothing_kept(gateway, anna)
        with pytest.raises(ConsentUnknown):
            await anna.get_consent(consent_ids["foreign_id"])


async def _nothing_kept(gateway: RunningGateway, sdk: Any) -> None:
    # A refused send changes no state: no message row, no blob, nothing in the outbox.
    assert (await sdk.outbox())["messages"] == []
    assert await sql(gateway, "SELECT id FROM messages") == []
    assert blob_files(gateway) == []


def test_subject_ref_is_the_keyed_pseudonym_and_refuses_a_mistyped_number() -> None:
    city_key = bytes(range(32))
    keystore = Keystore(
        owner="so-nordost/anna",
        keypairs={1: DeviceKeyPair.generate(KeyId.parse(ANNA))},
        subject_key=city_key,
        pinned_admins={"admin/root/1": SigningKey.generate().verify_key},
    )
    sdk = StafettClient("http://127.0.0.1:9", keystore)
    expected = subject_reference(parse_personnummer("811228-9874", today=date.today()), city_key)
    assert sdk.subject_ref("19811228-9874") == expected
    with pytest.raises(SubjectIdInvalid):
        sdk.subject_ref("811228-9875")  # check digit wrong: a different person, refused

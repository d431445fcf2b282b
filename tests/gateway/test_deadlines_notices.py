"""Notices on both stores: a REJECTED receipt returns the matter to the sender with the
reason (verified receipt, outbox, status, event; never escalated); consent-ending
reminders go once to the recording unit, also with two instances at once."""

from __future__ import annotations

import secrets

import pytest

from gateway.appkeys import DIRECTORY, SESSIONMAKER
from gateway.jobs.deadlines import escalate_overdue, remind_consents_ending
from keys.protocol.receipt import verify_receipt
from tests.support.deadlines import (
    SARA,
    add_flow5_units,
    audit_data,
    device_events,
    record_flow5_consent,
    send_flow5,
)
from tests.support.factories import DAY
from tests.support.gateway import run_on_two_instances
from tests.support.messages import ANNA, BO, now, receipt_for, record_consent


@pytest.mark.asyncio
async def test_a_rejected_receipt_flows_back_to_the_sender_with_the_reason(gateway) -> None:
    await add_flow5_units(gateway)
    consent_id = await record_flow5_consent(gateway)
    header = await send_flow5(gateway, consent_id)
    mid = header.message_id
    anna = gateway.client(ANNA)
    assert (await anna.get(f"/v1/messages/{mid}/envelope")).status == 200
    # The person belongs to another district (tillhörighet): anna signs REJECTED.
    receipt = receipt_for(gateway, header, ANNA, status="rejected", reason="wrong_district")
    reply = await anna.post(f"/v1/messages/{mid}/receipt", receipt)
    assert reply.status == 200, reply.body
    assert reply.json()["state"] == "rejected"

    sara = gateway.client(SARA)
    # The sender's client verifies the signed receipt with the recipient's directory key.
    stored = (await sara.get(f"/v1/messages/{mid}/receipt")).json()
    verified = verify_receipt(
        stored,
        gateway.app[DIRECTORY].directory.signing_key(header.recipients[0]),
        expected_message_id=mid,
        expected_header_hash=header.hash().hex(),
        expected_recipients=[ANNA],
    )
    assert not verified.is_accepted
    assert verified.reason == "wrong_district"
    outbox = (await sara.get("/v1/outbox")).json()["messages"]
    assert [(m["state"], m["reason"]) for m in outbox] == [("rejected", "wrong_district")]
    status = (await sara.get(f"/v1/messages/{mid}")).json()
    assert status["state"] == "rejected"
    assert status["reason"] == "wrong_district"
    assert status["receipt"]["status"] == "rejected"
    events = await device_events(gateway, "socialjour/sara", "outbox.rejected")
    assert [e.message_id for e in events] == [mid]
    assert '"reason":"wrong_district"' in events[0].data_json
    assert [e["reason"] for e in await audit_data(gateway, "message_rejected")] == [
        "wrong_district"
    ]
    # Answered: a rejection is never escalated, however late it gets.
    directory = gateway.app[DIRECTORY].directory
    later = now() + 6 * DAY
    assert await escalate_overdue(gateway.app[SESSIONMAKER], directory, now=later) == 0
    # The consent still holds: the sender can send the matter again.
    again = await send_flow5(gateway, consent_id)
    assert again.message_id != mid


async def _consent(gateway, days: int, **changes) -> str:
    # Each about another person: the same consent twice is not stored twice.
    changes.setdefault("subject_ref", secrets.token_hex(32))
    record = await record_consent(gateway, valid_until=now() + days * DAY, **changes)
    return str(record["consent_id"])


@pytest.mark.asyncio
async def test_consent_ending_soon_is_reminded_once_to_the_recording_unit(gateway) -> None:
    soon = await _consent(gateway, 10)  # recorded by anna (so-nordost)
    later = await _consent(gateway, 60)
    by_sav = await _consent(gateway, 5, recorded_by=BO, obtained_by="sav/bo")
    withdrawn = await _consent(gateway, 3)
    reply = await gateway.client(ANNA).post(
        f"/v1/consents/{withdrawn}/withdraw", {"reason": "subject_withdrew"}
    )
    assert reply.status == 200, reply.body
    sessionmaker = gateway.app[SESSIONMAKER]
    t = now()
    assert await remind_consents_ending(sessionmaker, now=t, days_before=14) == 2
    assert await remind_consents_ending(sessionmaker, now=t + 60, days_before=14) == 0  # once
    anna_events = await device_events(gateway, "so-nordost/anna", "consent.ending")
    assert [f'"consent_id":"{soon}"' in e.data_json for e in anna_events] == [True]
    assert '"days_left":10' in anna_events[0].data_json
    bo_events = await device_events(gateway, "sav/bo", "consent.ending")
    assert [f'"consent_id":"{by_sav}"' in e.data_json for e in bo_events] == [True]
    entries = await audit_data(gateway, "consent_reminder")
    assert sorted((e["consent_id"], e["unit"]) for e in entries) == sorted(
        [(soon, "so-nordost"), (by_sav, "sav")]
    )
    # N days before, configurable: the 60-day consent is reminded when it is 14 away.
    assert await remind_consents_ending(sessionmaker, now=t + 45 * DAY, days_before=14) == 0
    assert await remind_consents_ending(sessionmaker, now=t + 47 * DAY, days_before=14) == 1
    entries = await audit_data(gateway, "consent_reminder")
    assert [e["consent_id"] for e in entries][-1] == later
    assert withdrawn not in {e["consent_id"] for e in entries}


@pytest.mark.asyncio
async def test_two_instances_remind_each_consent_once(gateway, store_url: str) -> None:
    ids = {await _consent(gateway, 7) for _ in range(5)}
    counts = await run_on_two_instances(
        store_url, lambda m: remind_consents_ending(m, now=now(), days_before=14, batch=2)
    )
    assert sum(counts) == len(ids)
    entries = await audit_data(gateway, "consent_reminder")
    assert sorted(e["consent_id"] for e in entries) == sorted(ids)
    assert len(await device_events(gateway, "so-nordost/anna", "consent.ending")) == len(ids)

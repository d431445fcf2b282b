"""Due times and escalation on both stores: due stamped at acceptance and shown in the
send answer, inbox, outbox and status; escalation once, audited, after a restart, and
not doubled by a second instance."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from gateway.appkeys import DIRECTORY, SESSIONMAKER
from gateway.auth import Caller
from gateway.blobs import BlobStore
from gateway.db import deadline_store
from gateway.db.engine import make_sessionmaker, open_engine
from gateway.db.models import MessageRow
from gateway.jobs.deadlines import current_directory, escalate_overdue
from gateway.services import message_access, messages
from gateway.services.directory import DirectoryService
from keys.crypto.keypairs import KeyId
from keys.domain.deadlines import load_deadline_policy
from tests.support.deadlines import (
    FLOW5,
    SARA,
    add_flow5_units,
    audit_data,
    device_events,
    flow5_consent_fields,
    record_flow5_consent,
    send_flow5,
)
from tests.support.factories import DAY
from tests.support.gateway import run_on_two_instances
from tests.support.messages import (
    ANNA,
    header_for,
    message_row,
    now,
    record_consent,
    seal_envelope,
    send_new,
    store_consent_as_of,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
# A Friday evening after office hours, and the Monday noon flow 5 makes it due.
FRIDAY_EVENING = int(datetime(2026, 11, 20, 19, 30, tzinfo=STOCKHOLM).timestamp())
MONDAY_NOON = int(datetime(2026, 11, 23, 12, 0, tzinfo=STOCKHOLM).timestamp())


def caller(kid: str) -> Caller:
    parsed = KeyId.parse(kid)
    return Caller(kid=parsed, unit=parsed.unit, device=parsed.device, is_admin=False)


async def _store_consent_at(gateway, t: int) -> str:
    """A flow-5 consent valid around ``t`` (stored as it was recorded back then: the
    API checks a consent against the real clock)."""
    return await store_consent_as_of(
        gateway,
        t,
        ["socialjour", "so-nordost"],
        **flow5_consent_fields(
            valid_from=t - 10 * DAY, valid_until=t + 60 * DAY, obtained_at=t - DAY, created=t
        ),
    )


@pytest.mark.asyncio
async def test_friday_evening_after_hours_handover_is_due_monday_noon(gateway) -> None:
    await add_flow5_units(gateway)
    consent_id = await _store_consent_at(gateway, FRIDAY_EVENING)
    header = header_for(
        gateway,
        consent_id=consent_id,
        sender=SARA,
        recipients=(ANNA,),
        created=FRIDAY_EVENING - 60,
        expires=FRIDAY_EVENING + 7 * DAY,
        **FLOW5,
    )
    envelope = seal_envelope(gateway, header)

    async def chunks():
        yield envelope

    sessionmaker = gateway.app[SESSIONMAKER]
    directory = gateway.app[DIRECTORY].directory
    # The service with a fake clock (the HTTP layer reads the real one).
    result = await messages.send_message(
        sessionmaker,
        caller(SARA),
        header.message_id,
        chunks(),
        directory=directory,
        settings=gateway.settings,
        blobs=BlobStore(gateway.settings.blobs),
        now=FRIDAY_EVENING,
    )
    assert result.status == 201
    assert result.body["due"] == MONDAY_NOON
    inbox = await message_access.inbox(
        sessionmaker,
        caller(ANNA),
        directory=directory,
        after=None,
        limit=10,
        now=FRIDAY_EVENING + 3600,
    )
    assert [(m["message_id"], m["due"]) for m in inbox["messages"]] == [
        (header.message_id, MONDAY_NOON)
    ]
    outbox = await message_access.outbox(
        sessionmaker, caller(SARA), directory=directory, after=None, limit=10
    )
    assert [(m["message_id"], m["due"]) for m in outbox["messages"]] == [
        (header.message_id, MONDAY_NOON)
    ]
    # Before Monday noon nothing is overdue; at noon it is.
    assert await escalate_overdue(sessionmaker, directory, now=MONDAY_NOON - 1) == 0
    assert await escalate_overdue(sessionmaker, directory, now=MONDAY_NOON) == 1


@pytest.mark.asyncio
async def test_due_is_in_the_answer_inbox_outbox_and_status_over_http(gateway) -> None:
    await add_flow5_units(gateway)
    consent_id = await record_flow5_consent(gateway)
    header = header_for(gateway, consent_id=consent_id, sender=SARA, recipients=(ANNA,), **FLOW5)
    reply = await gateway.client(SARA).put(
        f"/v1/messages/{header.message_id}",
        seal_envelope(gateway, header),
        content_type="application/vnd.stafett.envelope",
    )
    assert reply.status == 201, reply.body
    row = await message_row(gateway, header.message_id)
    assert row is not None
    expected = load_deadline_policy().due(
        "socialjour", "district", "after_hours_handover", row.accepted_at
    )
    assert expected is not None
    assert row.due == expected
    assert reply.json()["due"] == expected
    inbox = (await gateway.client(ANNA).get("/v1/inbox")).json()["messages"]
    assert [m["due"] for m in inbox] == [expected]
    outbox = (await gateway.client(SARA).get("/v1/outbox")).json()["messages"]
    assert [(m["due"], m["escalated_at"]) for m in outbox] == [(expected, None)]
    status = (await gateway.client(SARA).get(f"/v1/messages/{header.message_id}")).json()
    assert status["due"] == expected
    # A flow without a rule (district → SAV transfer) has no due time: never escalated.
    other = await record_consent(gateway)
    plain, _ = await send_new(gateway, other["consent_id"])
    plain_row = await message_row(gateway, plain.message_id)
    assert plain_row is not None
    assert plain_row.due is None


async def _overdue_setup(gateway, count: int) -> tuple[list[str], int]:
    await add_flow5_units(gateway)
    consent_id = await record_flow5_consent(gateway)
    ids = [(await send_flow5(gateway, consent_id)).message_id for _ in range(count)]
    rows = [await message_row(gateway, mid) for mid in ids]
    dues = {r.due for r in rows if r is not None}
    assert len(dues) == 1  # the same business day noon
    due = dues.pop()
    assert due is not None
    return ids, due


@pytest.mark.asyncio
async def test_escalation_fires_once_is_audited_and_survives_a_restart(
    gateway, store_url: str
) -> None:
    (first, second), due = await _overdue_setup(gateway, 2)
    # `second` was accepted a day later than `first` (same flow, due a day later).
    async with gateway.app[SESSIONMAKER].begin() as session:
        await session.execute(
            update(MessageRow).where(MessageRow.id == second).values(due=due + DAY)
        )
    sessionmaker = gateway.app[SESSIONMAKER]
    directory = gateway.app[DIRECTORY].directory
    assert await escalate_overdue(sessionmaker, directory, now=due - 1) == 0
    assert await escalate_overdue(sessionmaker, directory, now=due) == 1  # inclusive
    assert await escalate_overdue(sessionmaker, directory, now=due + 600) == 0  # once

    # The sender and the recipient unit's contact device are told; anna, who was
    # addressed but is not the designated contact, is not (a contact exists).
    to_sender = await device_events(gateway, "socialjour/sara", "outbox.overdue")
    to_contact = await device_events(gateway, "so-nordost/mottagning", "inbox.overdue")
    assert [e.message_id for e in to_sender] == [first]
    assert [e.message_id for e in to_contact] == [first]
    assert await device_events(gateway, "so-nordost/anna", "inbox.overdue") == []
    assert '"role":"recipient_contact"' in to_contact[0].data_json
    assert f'"due":{due}' in to_contact[0].data_json
    assert "ab" * 32 not in to_contact[0].data_json  # no pseudonym in an event
    entries = await audit_data(gateway, "message_escalated")
    assert len(entries) == 1
    assert entries[0]["message_id"] == first
    assert entries[0]["due"] == due
    assert entries[0]["recipient_has_contact"] is True
    assert entries[0]["notified"] == [
        {"device": "socialjour/sara", "role": "sender"},
        {"device": "so-nordost/mottagning", "role": "recipient_contact"},
    ]
    status = (await gateway.client(SARA).get(f"/v1/messages/{first}")).json()
    assert status["escalated_at"] == due

    # A crash between the claim and the commit: nothing persists, the work is redone.
    async def die_before_commit() -> None:
        async with sessionmaker.begin() as session:
            assert await deadline_store.mark_escalated(session, second, now=due + DAY)
            raise RuntimeError("the instance died before the commit")

    with pytest.raises(RuntimeError):
        await die_before_commit()

    # The restart: a new engine and a directory rebuilt from the database, no memory.
    engine = open_engine(store_url)
    try:
        restarted = make_sessionmaker(engine)
        rebuilt = await current_directory(
            restarted, DirectoryService(gateway.identity.pinned_admins)
        )
        assert await escalate_overdue(restarted, rebuilt, now=due + DAY) == 1  # `second`
        assert await escalate_overdue(restarted, rebuilt, now=due + 2 * DAY) == 0
    finally:
        await engine.dispose()
    entries = await audit_data(gateway, "message_escalated")
    assert [e["message_id"] for e in entries] == [first, second]
    to_sender = await device_events(gateway, "socialjour/sara", "outbox.overdue")
    assert [e.message_id for e in to_sender] == [first, second]


@pytest.mark.asyncio
async def test_two_instances_escalate_each_message_exactly_once(gateway, store_url: str) -> None:
    ids, due = await _overdue_setup(gateway, 6)
    directory = gateway.app[DIRECTORY].directory
    # Two instances: two engines (two pools), one database, running at the same moment.
    counts = await run_on_two_instances(
        store_url, lambda m: escalate_overdue(m, directory, now=due + 5, batch=2)
    )
    assert sum(counts) == len(ids)
    entries = await audit_data(gateway, "message_escalated")
    assert sorted(e["message_id"] for e in entries) == sorted(ids)  # one entry each
    for device, kind in (
        ("socialjour/sara", "outbox.overdue"),
        ("so-nordost/mottagning", "inbox.overdue"),
    ):
        events = await device_events(gateway, device, kind)
        assert sorted(e.message_id or "" for e in events) == sorted(ids)  # one per target


@pytest.mark.asyncio
async def test_answered_or_expired_messages_are_not_escalated(gateway) -> None:
    ids, due = await _overdue_setup(gateway, 3)
    recalled, expired, pending = ids
    reply = await gateway.client(SARA).post(f"/v1/messages/{recalled}/recall", {})
    assert reply.status == 200, reply.body
    async with gateway.app[SESSIONMAKER].begin() as session:
        # Its expiry passed before the escalation job ran: the expiry job's
        # "not handed over" notice is the one the sender gets.
        await session.execute(
            update(MessageRow).where(MessageRow.id == expired).values(expires=due)
        )
    sessionmaker = gateway.app[SESSIONMAKER]
    assert await escalate_overdue(sessionmaker, gateway.app[DIRECTORY].directory, now=due) == 1
    entries = await audit_data(gateway, "message_escalated")
    assert [e["message_id"] for e in entries] == [pending]


@pytest.mark.asyncio
async def test_the_scheduler_runs_the_deadline_jobs(start) -> None:
    gw = await start(escalation_interval_s=1, consent_reminder_interval_s=1)
    await add_flow5_units(gw)
    consent_id = await record_flow5_consent(gw, valid_until=now() + 10 * DAY)
    header = await send_flow5(gw, consent_id)
    async with gw.app[SESSIONMAKER].begin() as session:
        # Accepted long enough ago that its due time has passed.
        await session.execute(
            update(MessageRow).where(MessageRow.id == header.message_id).values(due=now() - 60)
        )
    for _ in range(100):  # the first runs come one interval after start-up
        escalated = await audit_data(gw, "message_escalated")
        reminded = await audit_data(gw, "consent_reminder")
        if escalated and reminded:
            break
        await asyncio.sleep(0.1)
    assert [e["message_id"] for e in escalated] == [header.message_id]
    assert [e["consent_id"] for e in reminded] == [consent_id]
    assert [e["unit"] for e in reminded] == ["socialjour"]

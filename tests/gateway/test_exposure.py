"""Revoking a device marks what is pending for its keys exposed, on every store.

Through the real app (signed HTTP) on SQLite and PostgreSQL: the revocation commits
with ``exposed_at``, the audit entry and the events for the sender and for every other
active device of the recipient unit, which also see it in their inbox.
"""

from __future__ import annotations

import json

import pytest

from keys.protocol.envelope import EnvelopeHeader
from tests.support.gateway import RunningGateway, assert_problem
from tests.support.messages import (
    ANNA,
    BERTIL,
    BO,
    audit_events,
    events,
    header_for,
    message_row,
    receipt_for,
    record_consent,
    seal_envelope,
    send,
)


async def _to_nordost(gw: RunningGateway, consent_id: str) -> EnvelopeHeader:
    """Bo (SAV) sends to so-nordost, sealed to both its devices."""
    header = header_for(gw, consent_id=consent_id, sender=BO, recipients=(ANNA, BERTIL))
    reply = await send(gw, BO, header.message_id, seal_envelope(gw, header))
    assert reply.status == 201, reply.body
    return header


@pytest.mark.asyncio
async def test_revocation_exposes_pending_messages_and_tells_sender_and_unit(
    gateway: RunningGateway,
) -> None:
    consent = (await record_consent(gateway))["consent_id"]
    pending = (await _to_nordost(gateway, consent)).message_id
    handed = await _to_nordost(gateway, consent)
    anna = gateway.client(ANNA)
    assert (await anna.get(f"/v1/messages/{handed.message_id}/envelope")).status == 200
    receipt = receipt_for(gateway, handed, ANNA)
    assert (await anna.post(f"/v1/messages/{handed.message_id}/receipt", receipt)).status == 200
    elsewhere = header_for(gateway, consent_id=consent)  # Anna -> SAV: no key of Bertil's
    assert (
        await send(gateway, ANNA, elsewhere.message_id, seal_envelope(gateway, elsewhere))
    ).status == 201

    revoke = gateway.builder.entry(
        "revoke_device", {"device": "so-nordost/bertil", "reason": "lost"}
    )
    await gateway.append(revoke)

    row = await message_row(gateway, pending)
    assert row is not None
    assert row.exposed_at is not None
    for other in (handed.message_id, elsewhere.message_id):
        row = await message_row(gateway, other)
        assert row is not None
        assert row.exposed_at is None
    expected = {
        "state": "accepted",
        "exposed": [BERTIL],
        "reason": "lost",
        "directory_seq": revoke.seq,
    }
    # The sender, and the unit's other (still active) device; each told once.
    told_bo = [(k, m, json.loads(d)) for k, m, d in await events(gateway, "sav/bo")]
    assert [t for t in told_bo if t[0] == "outbox.exposed"] == [
        ("outbox.exposed", pending, expected)
    ]
    told_anna = [(k, m, json.loads(d)) for k, m, d in await events(gateway, "so-nordost/anna")]
    assert [t for t in told_anna if t[0] == "inbox.exposed"] == [
        ("inbox.exposed", pending, expected)
    ]
    assert [e for e, d in await audit_events(gateway) if e == "message_exposed"] == [
        "message_exposed"
    ]

    # The status (sender) and the inbox (the unit's other device) carry it.
    status = (await gateway.client(BO).get(f"/v1/messages/{pending}")).json()
    assert status["exposed_at"] is not None
    inbox = {m["message_id"]: m for m in (await anna.get("/v1/inbox")).json()["messages"]}
    assert inbox[pending]["exposed_at"] is not None
    # The revoked device is not told (it may be in a thief's hands), but refused as revoked.
    assert "inbox.exposed" not in [k for k, _, _ in await events(gateway, "so-nordost/bertil")]
    assert_problem(await gateway.client(BERTIL).get("/v1/inbox"), 403, "device_revoked")

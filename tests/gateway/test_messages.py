"""Messages end to end on both stores: send, idempotent retry, inbox, fetch, receipt,
recall — and that deletion really deletes (asserted on the database and the blob dir)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from keys.protocol.envelope import open_envelope
from tests.support.gateway import assert_problem, blob_files
from tests.support.messages import (
    ANNA,
    BERTIL,
    BO,
    audit_events,
    events,
    header_for,
    message_row,
    receipt_for,
    recipient_rows,
    record_consent,
    seal_envelope,
    send,
    send_new,
)


@pytest.mark.asyncio
async def test_send_fetch_receipt_deletes_content(gateway, tmp_path: Path) -> None:
    consent = await record_consent(gateway)
    header = header_for(gateway, consent_id=consent["consent_id"])
    envelope = seal_envelope(gateway, header, b"the case file")
    mid = header.message_id

    reply = await send(gateway, ANNA, mid, envelope)
    assert reply.status == 201, reply.body
    accepted = reply.json()
    assert accepted["consent_id"] == consent["consent_id"]
    assert accepted["consent_version"] == 1
    assert accepted["header_hash"] == header.hash().hex()
    assert accepted["size"] == len(envelope)
    assert len(blob_files(gateway)) == 1
    assert await recipient_rows(gateway, mid) == [BO]

    # The audit entry names the consent and the pseudonym, never content.
    entry = next(json.loads(d) for e, d in await audit_events(gateway) if e == "message_accepted")
    assert entry["consent_id"] == consent["consent_id"]
    assert entry["consent_version"] == 1
    assert entry["subject_ref"] == header.subject_ref
    assert entry["header_hash"] == header.hash().hex()
    assert ("inbox.new", mid) in [(k, m) for k, m, _ in await events(gateway, "sav/bo")]

    # A byte-identical retry gets the original answer; another envelope is a conflict.
    retry = await send(gateway, ANNA, mid, envelope)
    assert retry.status == 200
    assert retry.json() == accepted
    other = seal_envelope(gateway, header, b"something else")
    assert_problem(await send(gateway, ANNA, mid, other), 409, "message_id_conflict")
    assert len(blob_files(gateway)) == 1  # neither left a file behind

    bo = gateway.client(BO)
    inbox = (await bo.get("/v1/inbox")).json()
    assert [m["message_id"] for m in inbox["messages"]] == [mid]
    item = inbox["messages"][0]
    assert item["sender"] == ANNA
    assert item["category"] == "case_transfer"
    assert item["state"] == "accepted"
    assert item["due"] is None
    assert item["size"] == len(envelope)
    assert (await gateway.client(BERTIL).get("/v1/inbox")).json()["messages"] == []

    # Only recipient devices may fetch; others cannot tell the message exists.
    for kid in (ANNA, BERTIL):
        assert_problem(
            await gateway.client(kid).get(f"/v1/messages/{mid}/envelope"), 404, "message_not_found"
        )
    assert_problem(
        await gateway.client(BERTIL).get(f"/v1/messages/{mid}"), 404, "message_not_found"
    )

    # A receipt before the recipient fetched is refused (it cannot know hH yet).
    assert_problem(
        await bo.post(f"/v1/messages/{mid}/receipt", receipt_for(gateway, header)),
        409,
        "message_state_conflict",
    )
    fetched = await bo.get(f"/v1/messages/{mid}/envelope")
    assert fetched.status == 200
    assert fetched.headers["Content-Type"] == "application/vnd.stafett.envelope"
    assert fetched.body == envelope
    src = tmp_path / "in.stf"
    src.write_bytes(fetched.body)
    opened = open_envelope(
        src,
        gateway.devices[BO],
        lambda kid: gateway.devices[str(kid)].signing_key.verify_key,
        tmp_path / "out",
    )
    assert opened.header == header
    assert (tmp_path / "out").read_bytes() == b"the case file"
    assert (await message_row(gateway, mid)).state == "delivered"
    assert ("outbox.delivered", mid) in [
        (k, m) for k, m, _ in await events(gateway, "so-nordost/anna")
    ]

    # Receipts that do not bind to this envelope and device are refused.
    wrong_hash = receipt_for(gateway, header, header_hash=b"\x01" * 32)
    assert_problem(
        await bo.post(f"/v1/messages/{mid}/receipt", wrong_hash), 422, "receipt_mismatch"
    )
    by_bertil = receipt_for(gateway, header, BERTIL)
    assert_problem(
        await gateway.client(BERTIL).post(f"/v1/messages/{mid}/receipt", by_bertil),
        404,
        "message_not_found",
    )
    assert_problem(await bo.post(f"/v1/messages/{mid}/receipt", by_bertil), 422, "receipt_mismatch")

    receipt = receipt_for(gateway, header)
    handed = await bo.post(f"/v1/messages/{mid}/receipt", receipt)
    assert handed.status == 200, handed.body
    assert handed.json()["state"] == "handed_over"

    # Content is gone: row content fields nulled, recipient index empty, blob file gone.
    row = await message_row(gateway, mid)
    assert row.state == "handed_over"
    assert row.handed_over_at is not None
    assert row.blob_key is None
    assert await recipient_rows(gateway, mid) == []
    assert blob_files(gateway) == []

    # The same receipt again: the same answer. The sender can fetch the signed receipt.
    assert (await bo.post(f"/v1/messages/{mid}/receipt", receipt)).json() == handed.json()
    anna = gateway.client(ANNA)
    assert (await anna.get(f"/v1/messages/{mid}/receipt")).json() == receipt
    assert_problem(await bo.get(f"/v1/messages/{mid}/receipt"), 404, "message_not_found")
    status = (await anna.get(f"/v1/messages/{mid}")).json()
    assert status["state"] == "handed_over"
    assert status["receipt"]["status"] == "accepted"
    assert status["receipt"]["recipient"] == BO
    outbox = (await anna.get("/v1/outbox")).json()["messages"]
    assert [(m["message_id"], m["state"]) for m in outbox] == [(mid, "handed_over")]
    assert ("outbox.handed_over", mid) in [
        (k, m) for k, m, _ in await events(gateway, "so-nordost/anna")
    ]
    assert "message_handed_over" in [e for e, _ in await audit_events(gateway)]

    # After handover: a retried send still gets its original answer; a fetch learns the
    # content is gone; the inbox is empty.
    assert (await send(gateway, ANNA, mid, envelope)).json() == accepted
    gone = await bo.get(f"/v1/messages/{mid}/envelope")
    assert_problem(gone, 410, "message_gone")
    assert "handed_over" in gone.json()["detail"]
    assert (await bo.get("/v1/inbox")).json()["messages"] == []


@pytest.mark.asyncio
async def test_rejected_receipt_ends_the_handover_and_the_sender_sees_it(gateway) -> None:
    consent = await record_consent(gateway)
    header, _ = await send_new(gateway, consent["consent_id"])
    mid = header.message_id
    bo = gateway.client(BO)
    assert (await bo.get(f"/v1/messages/{mid}/envelope")).status == 200
    unknown_reason = receipt_for(gateway, header, status="rejected", reason="not_in_vocabulary")
    assert_problem(
        await bo.post(f"/v1/messages/{mid}/receipt", unknown_reason), 422, "receipt_invalid"
    )
    rejection = receipt_for(gateway, header, status="rejected", reason="wrong_district")
    reply = await bo.post(f"/v1/messages/{mid}/receipt", rejection)
    assert reply.status == 200
    assert reply.json()["state"] == "rejected"
    assert blob_files(gateway) == []
    assert await recipient_rows(gateway, mid) == []
    anna = gateway.client(ANNA)
    status = (await anna.get(f"/v1/messages/{mid}")).json()
    assert status["state"] == "rejected"
    assert status["handed_over_at"] is None
    assert status["receipt"]["status"] == "rejected"
    assert status["receipt"]["reason"] == "wrong_district"
    assert (await anna.get(f"/v1/messages/{mid}/receipt")).json() == rejection
    kinds = [(k, json.loads(d)) for k, m, d in await events(gateway, "so-nordost/anna") if m == mid]
    assert ("outbox.rejected", {"state": "rejected", "reason": "wrong_district"}) in kinds


@pytest.mark.asyncio
async def test_recall_before_handover_only_by_the_sender(gateway) -> None:
    consent = await record_consent(gateway)
    header, _ = await send_new(gateway, consent["consent_id"])
    mid = header.message_id
    bo, anna = gateway.client(BO), gateway.client(ANNA)
    assert_problem(await bo.post(f"/v1/messages/{mid}/recall"), 404, "message_not_found")
    assert_problem(
        await gateway.client(BERTIL).post(f"/v1/messages/{mid}/recall"), 404, "message_not_found"
    )
    reply = await anna.post(f"/v1/messages/{mid}/recall")
    assert reply.status == 200, reply.body
    assert reply.json()["state"] == "recalled"
    assert blob_files(gateway) == []
    assert await recipient_rows(gateway, mid) == []
    assert (await message_row(gateway, mid)).blob_key is None
    assert ("inbox.removed", mid) in [(k, m) for k, m, _ in await events(gateway, "sav/bo")]
    assert_problem(await bo.get(f"/v1/messages/{mid}/envelope"), 410, "message_gone")
    assert_problem(await anna.post(f"/v1/messages/{mid}/recall"), 409, "message_state_conflict")

    # After handover a recall is refused and changes nothing.
    second, _ = await send_new(gateway, consent["consent_id"])
    sid = second.message_id
    assert (await bo.get(f"/v1/messages/{sid}/envelope")).status == 200
    assert (
        await bo.post(f"/v1/messages/{sid}/receipt", receipt_for(gateway, second))
    ).status == 200
    assert_problem(await anna.post(f"/v1/messages/{sid}/recall"), 409, "message_state_conflict")
    assert (await message_row(gateway, sid)).state == "handed_over"


@pytest.mark.asyncio
async def test_inbox_pages_with_a_cursor(gateway) -> None:
    consent = await record_consent(gateway)
    sent = [(await send_new(gateway, consent["consent_id"]))[0].message_id for _ in range(3)]
    bo = gateway.client(BO)
    first = (await bo.get("/v1/inbox?limit=2")).json()
    assert len(first["messages"]) == 2
    assert first["next"]
    rest = (await bo.get(f"/v1/inbox?limit=2&after={first['next']}")).json()
    seen = [m["message_id"] for m in first["messages"] + rest["messages"]]
    assert sorted(seen) == sorted(sent)
    assert len(set(seen)) == 3
    assert rest["next"] is None
    assert_problem(await bo.get("/v1/inbox?after=nonsense"), 400, "field_invalid")
    outbox = (await gateway.client(ANNA).get("/v1/outbox")).json()["messages"]
    assert sorted(m["message_id"] for m in outbox) == sorted(sent)
    assert (await bo.get("/v1/outbox")).json()["messages"] == []


@pytest.mark.asyncio
async def test_streamed_fetch_of_a_multi_chunk_envelope(gateway) -> None:
    consent = await record_consent(gateway)
    header = header_for(gateway, consent_id=consent["consent_id"])
    content = io.BytesIO(bytes(range(256)) * 1200).getvalue()  # ~300 KiB, several chunks
    envelope = seal_envelope(gateway, header, content)
    assert (await send(gateway, ANNA, header.message_id, envelope)).status == 201
    fetched = await gateway.client(BO).get(f"/v1/messages/{header.message_id}/envelope")
    assert fetched.body == envelope

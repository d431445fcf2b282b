"""Withdrawing a consent withdraws its pending messages at once."""

from __future__ import annotations

import json
import time

import pytest

from gateway.appkeys import SESSIONMAKER
from gateway.blobs import BlobStore, unlink_all
from gateway.services.messages import destroy_content, end_pending
from keys.domain.lifecycle import MessageEvent
from tests.support.factories import DAY
from tests.support.gateway import assert_problem, blob_files
from tests.support.messages import (
    BO,
    audit_events,
    events,
    message_row,
    now,
    receipt_for,
    recipient_rows,
    record_consent,
    send_new,
)


@pytest.mark.asyncio
async def test_withdrawal_withdraws_pending_messages_and_tells_the_sender(gateway) -> None:
    consent = await record_consent(gateway)
    cid = consent["consent_id"]
    # An unrelated consent (it ends later, so it is not a repeat) keeps its message.
    other = await record_consent(gateway, valid_until=now() + 120 * DAY)
    pending = [(await send_new(gateway, cid))[0] for _ in range(2)]
    handed, _ = await send_new(gateway, cid)
    kept, _ = await send_new(gateway, other["consent_id"])
    bo = gateway.client(BO)
    # One of them is fetched (delivered, still pending); one is already handed over.
    assert (await bo.get(f"/v1/messages/{pending[0].message_id}/envelope")).status == 200
    assert (await bo.get(f"/v1/messages/{handed.message_id}/envelope")).status == 200
    receipt = receipt_for(gateway, handed)
    assert (await bo.post(f"/v1/messages/{handed.message_id}/receipt", receipt)).status == 200
    assert len(blob_files(gateway)) == 3

    reply = await bo.post(f"/v1/consents/{cid}/withdraw", {"reason": "subject_withdrew"})
    assert reply.status == 200, reply.body
    assert reply.json()["messages_withdrawn"] == 2

    for header in pending:
        mid = header.message_id
        row = await message_row(gateway, mid)
        assert row.state == "withdrawn"
        assert row.blob_key is None
        assert await recipient_rows(gateway, mid) == []
        assert_problem(await bo.get(f"/v1/messages/{mid}/envelope"), 410, "message_gone")
        told = [
            (k, json.loads(d)) for k, m, d in await events(gateway, "so-nordost/anna") if m == mid
        ]
        assert ("outbox.withdrawn", {"state": "withdrawn", "reason": "subject_withdrew"}) in told
        assert ("inbox.removed", mid) in [(k, m) for k, m, _ in await events(gateway, "sav/bo")]
    assert (await message_row(gateway, handed.message_id)).state == "handed_over"
    assert (await message_row(gateway, kept.message_id)).state == "accepted"
    assert len(blob_files(gateway)) == 1  # only the unrelated message's envelope is left
    withdrawn = [json.loads(d) for e, d in await audit_events(gateway) if e == "message_withdrawn"]
    assert sorted(d["message_id"] for d in withdrawn) == sorted(h.message_id for h in pending)
    assert all(d["consent_id"] == cid for d in withdrawn)

    # A withdrawal again changes nothing and withdraws nothing more.
    again = await bo.post(f"/v1/consents/{cid}/withdraw", {"reason": "subject_withdrew"})
    assert again.json()["messages_withdrawn"] == 0


@pytest.mark.asyncio
async def test_the_shared_deletion_path_is_idempotent(start) -> None:
    gateway = await start(blob_inline_bytes=0)  # about the files of the directory store
    consent = await record_consent(gateway)
    header, _ = await send_new(gateway, consent["consent_id"])
    mid = header.message_id
    blobs = BlobStore(gateway.settings.blobs)
    sessionmaker = gateway.app[SESSIONMAKER]
    t = int(time.time())
    async with sessionmaker.begin() as session:
        files = await end_pending(session, mid, MessageEvent.EXPIRE, now=t, blobs=blobs)
    # The temp name, the published file and the message's directory (with anything
    # else a crashed upload of the same id left in it).
    assert len(files) == 3
    assert blob_files(gateway)  # not unlinked by the service: that is after the commit
    unlink_all(files)
    assert blob_files(gateway) == []
    assert list(gateway.settings.blobs.iterdir()) == []
    async with sessionmaker.begin() as session:
        assert await end_pending(session, mid, MessageEvent.EXPIRE, now=t, blobs=blobs) == []
        assert await destroy_content(session, mid, blobs=gateway.settings.blobs) == []
    row = await message_row(gateway, mid)
    assert row.state == "expired"
    assert row.blob_key is None
    kinds = [k for k, m, _ in await events(gateway, "so-nordost/anna") if m == mid]
    assert kinds.count("outbox.expired") == 1

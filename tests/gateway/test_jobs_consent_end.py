"""The job that ends messages when their consent ends, on both stores and with two
instances at once: each message withdrawn exactly once, reason ``consent_ended``.

Rows are stored as an accepted send leaves them (``message_store.insert`` and a real
blob); the consent row carries only what the job reads (its ``valid_until``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.blobs import BlobStore
from gateway.db import message_store
from gateway.db.engine import SessionMaker
from gateway.db.models import AuditEntryRow, ConsentRow, EventRow, MessageRow
from gateway.jobs import expiry as jobs
from tests.support.gateway import run_on_two_instances

ANNA, BO = "so-nordost/anna/1", "sav/bo/1"
SUBJECT = "ab" * 32
CONSENT_END = 5_000


async def _chunks() -> AsyncIterator[bytes]:
    yield b"content under a consent that ends"


async def _consent(db: SessionMaker, valid_until: int) -> str:
    consent_id = str(uuid.uuid4())
    async with db.begin() as session:
        session.add(
            ConsentRow(
                id=consent_id,
                version=1,
                subject_ref=SUBJECT,
                recorded_by=ANNA,
                record_json="{}",
                valid_from=0,
                valid_until=valid_until,
                withdrawn_at=None,
                withdrawal_reason=None,
                created_at=0,
            )
        )
    return consent_id


async def _pending(db: SessionMaker, blobs: BlobStore, consent_id: str, expires: int) -> str:
    message_id = str(uuid.uuid4())
    upload = await blobs.receive(message_id, _chunks())
    row = MessageRow(
        id=message_id,
        sender_kid=ANNA,
        sender_unit="so-nordost",
        recipient_unit="sav",
        consent_id=consent_id,
        consent_version=1,
        subject_ref=SUBJECT,
        category="case_transfer",
        purpose="transfer_to_sav",
        header_hash="cd" * 32,
        envelope_hash="ef" * 32,
        size=upload.size,
        created=100,
        expires=expires,
        due=None,
        state="accepted",
        state_changed_at=100,
        accepted_at=100,
        delivered_at=None,
        handed_over_at=None,
        blob_key=upload.key,
    )
    async with db.begin() as session:
        await message_store.insert(session, row, [BO])
    blobs.publish(upload)
    return message_id


@pytest.mark.asyncio
async def test_two_instances_withdraw_each_message_of_an_ended_consent_once(
    store_url: str, db: SessionMaker, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    ended = await _consent(db, CONSENT_END)
    running = await _consent(db, CONSENT_END * 10)
    # Expiries after the consent's end: messages stored before the send-time cap.
    ids = {await _pending(db, blobs, ended, CONSENT_END + 1000 + i) for i in range(12)}
    keep = await _pending(db, blobs, running, CONSENT_END + 1000)
    assert await jobs.expire_messages(db, blobs.root, now=CONSENT_END - 1) == 0

    counts = await run_on_two_instances(
        store_url, lambda m: jobs.expire_messages(m, blobs.root, now=CONSENT_END, batch=5)
    )
    assert sum(counts) == len(ids)
    async with db() as session:
        states = dict((await session.execute(select(MessageRow.id, MessageRow.state))).all())
        reasons = set(await session.scalars(select(MessageRow.end_reason)))
        audited = list(
            await session.scalars(
                select(AuditEntryRow.data_json).where(AuditEntryRow.event == "message_withdrawn")
            )
        )
        notices = await session.scalar(
            select(func.count()).select_from(EventRow).where(EventRow.kind == "outbox.withdrawn")
        )
    assert {states[m] for m in ids} == {"withdrawn"}
    assert states[keep] == "accepted"
    assert reasons == {"consent_ended", None}
    assert sorted(json.loads(d)["message_id"] for d in audited) == sorted(ids)
    assert {json.loads(d)["reason"] for d in audited} == {"consent_ended"}
    assert notices == len(ids)
    assert len(list(blobs.root.iterdir())) == 1  # only the message still under consent

"""Retention on both stores: after a message ended and the retention period passed, its
subject reference and device ids are gone from message and event rows; pending
messages, the audit chain and receipts are untouched; two instances at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_jobs import insert_pending

from gateway.appkeys import SESSIONMAKER
from gateway.blobs import BlobStore
from gateway.db.engine import SessionMaker
from gateway.db.models import EventRow, MessageRecipient, MessageRow, ReceiptRow
from gateway.jobs.retention import DAY_S, REDACTED, apply_retention
from gateway.jobs.scheduler import job_table
from tests.support.factories import SUBJECT
from tests.support.gateway import run_on_two_instances
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

RETENTION_DAYS = 30


async def _count(sessionmaker: SessionMaker, model: type) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.asyncio
async def test_an_ended_message_forgets_subject_and_devices_after_the_period(gateway) -> None:
    assert "apply_retention" in [job.name for job in job_table(gateway.app)]
    consent = await record_consent(gateway)
    handed, _ = await send_new(gateway, consent["consent_id"])
    pending, _ = await send_new(gateway, consent["consent_id"])
    bo = gateway.client(BO)
    assert (await bo.get(f"/v1/messages/{handed.message_id}/envelope")).status == 200
    reply = await bo.post(f"/v1/messages/{handed.message_id}/receipt", receipt_for(gateway, handed))
    assert reply.status == 200, reply.body
    sessionmaker = gateway.app[SESSIONMAKER]
    audit_before = await audit_events(gateway)
    t = now()

    # Within the period nothing goes: the sender still sees its handover.
    early = await apply_retention(sessionmaker, now=t + 29 * DAY_S, retention_days=RETENTION_DAYS)
    assert early == 0
    row = await message_row(gateway, handed.message_id)
    assert row is not None
    assert row.subject_ref == SUBJECT

    later = t + (RETENTION_DAYS + 1) * DAY_S
    assert await apply_retention(sessionmaker, now=later, retention_days=RETENTION_DAYS) > 0
    row = await message_row(gateway, handed.message_id)
    assert row is not None
    assert (row.subject_ref, row.sender_kid) == (REDACTED, REDACTED)
    # What the report and the audit refer to stays.
    assert (row.state, row.sender_unit, row.recipient_unit) == ("handed_over", "so-nordost", "sav")
    assert await recipient_rows(gateway, handed.message_id) == []
    async with sessionmaker() as session:
        handed_events = await session.scalar(
            select(func.count())
            .select_from(EventRow)
            .where(EventRow.message_id == handed.message_id)
        )
        assert handed_events == 0
        assert await session.get(ReceiptRow, handed.message_id) is not None
    # A pending message keeps everything, events included (it ends within max_ttl).
    kept = await message_row(gateway, pending.message_id)
    assert kept is not None
    assert kept.subject_ref == SUBJECT
    assert kept.sender_kid
    assert await recipient_rows(gateway, pending.message_id) == [BO]
    assert any(mid == pending.message_id for _, mid, _ in await events(gateway, "sav/bo"))
    # The audit chain is not rewritten (its hashes cover the data).
    assert await audit_events(gateway) == audit_before
    # The sender no longer finds the ended message in its outbox; the recipient neither.
    outbox = (await gateway.client("so-nordost/anna/1").get("/v1/outbox")).json()
    assert handed.message_id not in str(outbox)
    # A second run finds nothing left to do.
    assert await apply_retention(sessionmaker, now=later, retention_days=RETENTION_DAYS) == 0


@pytest.mark.asyncio
async def test_two_instances_scrub_each_message_once(
    store_url: str, db: SessionMaker, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    ended = [await insert_pending(db, blobs, expires=200, state="expired") for _ in range(12)]
    live = await insert_pending(db, blobs, expires=10**9)
    counts = await run_on_two_instances(
        store_url,
        lambda m: apply_retention(m, now=100 + 31 * DAY_S, retention_days=30, batch=3),
    )
    assert sum(counts) == len(ended)  # no events here: every count is one scrubbed row
    async with db() as session:
        rows = {r.id: r for r in await session.scalars(select(MessageRow))}
    assert all(rows[mid].subject_ref == REDACTED for mid in ended)
    assert rows[live].subject_ref == SUBJECT
    assert await _count(db, MessageRecipient) == 1  # the live message's recipient only

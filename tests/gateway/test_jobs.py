"""Periodic jobs on both stores: expiry (content gone, notice, audit; exactly once when
two instances run it at once), checkpoints, nonce purge, and failure isolation.

Pending messages are inserted with the messages helper's store functions
(``gateway.db.message_store.insert`` + ``gateway.blobs.BlobStore``), as an accepted send
leaves them; the expiry itself runs through the real ``gateway.jobs.expiry`` code.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.blobs import BlobStore
from gateway.db import message_store
from gateway.db.engine import SessionMaker
from gateway.db.models import AuditEntryRow, EventRow, MessageRecipient, MessageRow, NonceRow
from gateway.jobs import expiry as jobs
from gateway.services.events import events_after
from tests.support.gateway import run_on_two_instances

ANNA, BO = "so-nordost/anna/1", "sav/bo/1"
SECRET = b"the content nobody may keep"
SUBJECT = "ab" * 32


async def _chunks() -> AsyncIterator[bytes]:
    yield SECRET


async def insert_pending(
    sessionmaker: SessionMaker,
    blobs: BlobStore,
    *,
    expires: int,
    state: str = "accepted",
    blob_key: str | None = None,
) -> str:
    """One stored message with its blob, as an accepted send leaves it."""
    message_id = uuid.uuid4().hex
    upload = await blobs.receive(message_id, _chunks())
    row = MessageRow(
        id=message_id,
        sender_kid=ANNA,
        sender_unit="so-nordost",
        recipient_unit="sav",
        consent_id="c-" + uuid.uuid4().hex[:8],
        consent_version=1,
        subject_ref=SUBJECT,
        category="threat_assessment",
        purpose="transfer",
        header_hash="cd" * 32,
        envelope_hash="ef" * 32,
        size=upload.size,
        created=100,
        expires=expires,
        due=None,
        state=state,
        state_changed_at=100,
        accepted_at=100,
        delivered_at=None,
        handed_over_at=None,
        blob_key=blob_key or upload.key,
    )
    async with sessionmaker.begin() as session:
        await message_store.insert(session, row, [BO])
    blobs.publish(upload)
    return message_id


async def _count(sessionmaker: SessionMaker, query: Any) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(query) or 0)


async def audit_events(sessionmaker: SessionMaker, event: str) -> list[str]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(AuditEntryRow).where(AuditEntryRow.event == event))
        return [r.data_json for r in rows]


@pytest.mark.asyncio
async def test_expiry_destroys_content_tells_the_sender_and_audits(
    db: SessionMaker, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    due = await insert_pending(db, blobs, expires=1000)
    later = await insert_pending(db, blobs, expires=5000)
    delivered = await insert_pending(db, blobs, expires=1000, state="delivered")
    done = await insert_pending(db, blobs, expires=1000, state="handed_over")
    assert await jobs.expire_messages(db, blobs.root, now=999) == 0
    # Inclusive: at `expires` the content is no longer handed out.
    assert await jobs.expire_messages(db, blobs.root, now=1000) == 2
    async with db() as session:
        states = dict((await session.execute(select(MessageRow.id, MessageRow.state))).all())
        gone = await session.get(MessageRow, due)
        events = await events_after(session, device=ANNA, after=0, limit=100)
        bo_events = await events_after(session, device=BO, after=0, limit=100)
    assert states == {due: "expired", delivered: "expired", later: "accepted", done: "handed_over"}
    assert gone is not None
    assert gone.blob_key is None
    # Content gone: the recipients index rows and the blob files of both expired ones.
    remaining = await _count(db, select(func.count()).select_from(MessageRecipient))
    assert remaining == 2  # `later` and `done` only
    files = sorted(p for p in blobs.root.rglob("*") if p.is_file())
    assert len(files) == 2
    assert len(list(blobs.root.iterdir())) == 2  # the expired ones' directories are gone
    # The "not handed over" notice to the sender, and the recipients told it is gone.
    notices = [e for e in events if e.kind == "outbox.expired"]
    assert sorted(e.message_id or "" for e in notices) == sorted([due, delivered])
    assert all(e.data["reason"] == "not_collected" for e in notices)
    assert {e.kind for e in bo_events} == {"inbox.removed"}
    entries = await audit_events(db, "message_expired")
    assert len(entries) == 2
    assert all(SECRET.decode() not in entry for entry in entries)
    # Idempotent: a second run finds nothing and records nothing.
    assert await jobs.expire_messages(db, blobs.root, now=2000) == 0
    assert len(await audit_events(db, "message_expired")) == 2


@pytest.mark.asyncio
async def test_two_instances_expire_each_message_exactly_once(
    store_url: str, db: SessionMaker, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    ids = {await insert_pending(db, blobs, expires=500 + i) for i in range(24)}
    # Two instances: two engines (two pools), one database.
    counts = await run_on_two_instances(
        store_url, lambda m: jobs.expire_messages(m, blobs.root, now=10_000, batch=5)
    )
    assert sum(counts) == len(ids)
    entries = await audit_events(db, "message_expired")
    assert len(entries) == len(ids)  # one audit entry each, no duplicates
    assert {mid for mid in ids if any(mid in e for e in entries)} == ids
    notices = await _count(
        db, select(func.count()).select_from(EventRow).where(EventRow.kind == "outbox.expired")
    )
    assert notices == len(ids)  # one notice each
    assert list(blobs.root.iterdir()) == []


@pytest.mark.asyncio
async def test_a_message_that_cannot_expire_is_logged_and_skipped(
    db: SessionMaker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    good = await insert_pending(db, blobs, expires=10)
    # A corrupt row: its blob key would point outside the blob directory.
    bad = await insert_pending(db, blobs, expires=10, blob_key="../../etc/passwd")
    with caplog.at_level(logging.ERROR, logger="gateway.jobs.expiry"):
        assert await jobs.expire_messages(db, blobs.root, now=20) == 1
    assert f"could not expire message {bad}" in caplog.text
    assert "ValueError" in caplog.text
    assert SECRET.decode() not in caplog.text
    assert SUBJECT not in caplog.text  # no pseudonym in logs either
    async with db() as session:
        assert (await session.get(MessageRow, good)).state == "expired"  # type: ignore[union-attr]
        assert (await session.get(MessageRow, bad)).state == "accepted"  # type: ignore[union-attr]
    assert len(await audit_events(db, "message_expired")) == 1


@pytest.mark.asyncio
async def test_purge_nonces_and_checkpoint(gateway: Any) -> None:
    from gateway.appkeys import IDENTITY, SESSIONMAKER

    sessionmaker = gateway.app[SESSIONMAKER]
    async with sessionmaker.begin() as session:
        session.add(NonceRow(keyid=ANNA, nonce="old", created=1000))
        session.add(NonceRow(keyid=ANNA, nonce="new", created=5000))
    assert await jobs.purge_nonces(sessionmaker, clock_skew_s=300, now=5000) == 1
    assert await jobs.purge_nonces(sessionmaker, clock_skew_s=300, now=5000) == 0
    size = await jobs.sign_audit_checkpoint(sessionmaker, gateway.app[IDENTITY], now=6000)
    assert size > 0  # the harness's directory appends are audited
    assert await jobs.sign_audit_checkpoint(sessionmaker, gateway.app[IDENTITY], now=6001) == size

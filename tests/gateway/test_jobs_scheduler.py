"""The scheduler wiring: failures are logged and the schedule goes on; the app's own
scheduler expires a message and the sender's push stream gets the notice."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from test_jobs import ANNA, insert_pending
from test_push import connect, receive

from gateway.appkeys import SESSIONMAKER
from gateway.blobs import BlobStore
from gateway.db.engine import make_sessionmaker, open_engine
from gateway.db.models import MessageRow, NonceRow
from gateway.jobs import expiry as jobs
from gateway.jobs.scheduler import JobRunner, Scheduled, run_job
from gateway.migrations import migrate


@pytest.mark.asyncio
async def test_a_failed_run_is_logged_and_the_next_run_works(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = open_engine(store_url)
    sessionmaker = make_sessionmaker(engine)

    async def purge(now: int) -> int:
        return await jobs.purge_nonces(sessionmaker, clock_skew_s=300, now=now)

    try:
        # A real failure: the database is not migrated yet, the table does not exist.
        with caplog.at_level(logging.ERROR, logger="gateway.jobs.expiry"):
            assert await run_job("purge_nonces", purge, 10_000) is None
        assert "job purge_nonces failed" in caplog.text
        await migrate(store_url)
        async with sessionmaker.begin() as session:
            session.add(NonceRow(keyid=ANNA, nonce="n", created=1))
        assert await run_job("purge_nonces", purge, 10_000) == 1
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_the_schedule_survives_a_failing_run(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = open_engine(store_url)
    sessionmaker = make_sessionmaker(engine)

    async def purge(now: int) -> int:
        return await jobs.purge_nonces(sessionmaker, clock_skew_s=0, now=now + 3600)

    runner = JobRunner([Scheduled("purge_nonces", 0.1, purge)])
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.jobs.expiry"):
            runner.start()
            for _ in range(50):  # first runs fail: no tables yet
                if "job purge_nonces failed" in caplog.text:
                    break
                await asyncio.sleep(0.05)
            assert "job purge_nonces failed" in caplog.text
        await migrate(store_url)
        async with sessionmaker.begin() as session:
            session.add(NonceRow(keyid=ANNA, nonce="n", created=int(time.time())))
        for _ in range(60):  # a later run of the same schedule purges it
            async with sessionmaker() as session:
                left = await session.scalar(select(func.count()).select_from(NonceRow))
            if left == 0:
                break
            await asyncio.sleep(0.05)
        assert left == 0
    finally:
        await runner.stop()
        await engine.dispose()


@pytest.mark.asyncio
async def test_app_scheduler_expires_and_pushes_the_not_handed_over_notice(start: Any) -> None:
    gw = await start(expire_interval_s=1, events_poll_interval_s=30.0)
    sessionmaker = gw.app[SESSIONMAKER]
    blobs = BlobStore(gw.settings.blobs)
    message_id = await insert_pending(sessionmaker, blobs, expires=int(time.time()) - 1)
    ws = await connect(gw, ANNA)
    try:
        # The scheduler's first run is after one interval; the notice arrives by wake.
        event = await receive(ws)
        assert event["kind"] == "outbox.expired"
        assert event["message_id"] == message_id
        assert event["data"]["reason"] == "not_collected"
    finally:
        await ws.close()
    async with sessionmaker() as session:
        row = await session.get(MessageRow, message_id)
    assert row is not None
    assert row.state == "expired"
    assert row.blob_key is None
    assert list(blobs.root.iterdir()) == []

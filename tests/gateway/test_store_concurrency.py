"""Read and write transactions on the store, and addressed push wake-ups.

SQLite: reads are deferred and query-only (they neither wait for nor take the write
lock), units of work queue in-process for the write lock instead of sleeping in SQLite's
busy handler, and every commit is fsync'd (synchronous=FULL). The notifier wakes only
the devices a commit concerned, and only once the root transaction committed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from gateway.db.engine import make_sessionmaker, open_engine
from gateway.db.models import NonceRow
from gateway.migrations import migrate
from gateway.push.notifier import Notifier, attach
from gateway.services.events import emit

ANNA, BO = "so-nordost/anna", "sav/bo"


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite3'}"


@pytest.mark.asyncio
async def test_sqlite_commits_are_fsynced(tmp_path: Path) -> None:
    # 2 = FULL. Threat: NORMAL (in WAL) can lose acknowledged commits on power loss.
    engine = open_engine(_sqlite(tmp_path))
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("PRAGMA synchronous")) == 2
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_a_read_session_cannot_write(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    await migrate(url)
    engine = open_engine(url)
    maker = make_sessionmaker(engine)
    try:
        async with maker() as session:
            session.add(NonceRow(keyid=f"{ANNA}/1", nonce="n", created=1))
            with pytest.raises(OperationalError, match="readonly"):
                await session.flush()
        async with maker.begin() as session:  # the same pooled connection writes again
            session.add(NonceRow(keyid=f"{ANNA}/1", nonce="n", created=1))
        async with maker() as session:
            assert await session.scalar(text("SELECT count(*) FROM nonces")) == 1
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_reads_do_not_wait_for_a_writer_and_writers_queue(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    await migrate(url)
    engine = open_engine(url)
    maker = make_sessionmaker(engine)
    try:
        holding = asyncio.Event()
        release = asyncio.Event()

        async def long_writer() -> None:
            async with maker.begin() as session:
                session.add(NonceRow(keyid=f"{ANNA}/1", nonce="held", created=1))
                await session.flush()
                holding.set()
                await release.wait()

        writer = asyncio.create_task(long_writer())
        await holding.wait()
        started = time.monotonic()
        async with maker() as session:  # a snapshot read: not behind the writer
            assert await session.scalar(text("SELECT count(*) FROM nonces")) == 0
        assert time.monotonic() - started < 1.0

        async def short_writer(i: int) -> None:
            async with maker.begin() as session:
                session.add(NonceRow(keyid=f"{BO}/1", nonce=f"n{i}", created=1))

        # More writers than pooled connections, all waiting on the held lock: they must
        # queue and all commit (none sleeps into busy_timeout or fails "locked").
        others = [asyncio.create_task(short_writer(i)) for i in range(20)]
        await asyncio.sleep(0.2)
        release.set()
        await asyncio.wait_for(asyncio.gather(writer, *others), timeout=10)
        async with maker() as session:
            assert await session.scalar(text("SELECT count(*) FROM nonces")) == 21
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_a_wake_reaches_only_the_devices_concerned() -> None:
    notifier = Notifier()
    anna, bo = notifier.generation_of(ANNA), notifier.generation_of(BO)
    woken = asyncio.create_task(notifier.wait(5, since=anna, device=ANNA))
    asleep = asyncio.create_task(notifier.wait(0.3, since=bo, device=BO))
    await asyncio.sleep(0)
    notifier.wake({ANNA})
    assert await woken is True
    assert await asleep is False  # a wake for another device does not wake this one
    assert notifier.generation_of(BO) == bo
    notifier.wake()  # unaddressed: everyone
    assert notifier.generation_of(BO) != bo


@pytest.mark.asyncio
async def test_the_wake_comes_after_the_root_commit_not_a_savepoint(store_url: str) -> None:
    await migrate(store_url)
    engine = open_engine(store_url)
    notifier = Notifier()
    attach(engine, notifier)
    maker = make_sessionmaker(engine)
    try:
        before = notifier.generation_of(ANNA)
        async with maker.begin() as session:
            async with session.begin_nested():
                await emit(
                    session, device=ANNA, kind="outbox.expired", message_id=None, data={}, now=1
                )
            # Released savepoint: not visible to other connections yet, so no wake.
            assert notifier.generation_of(ANNA) == before
            async with session.begin_nested() as savepoint:
                await emit(
                    session, device=BO, kind="inbox.removed", message_id=None, data={}, now=1
                )
                await savepoint.rollback()
        assert notifier.generation_of(ANNA) != before  # woken by the root commit
    finally:
        await engine.dispose()

"""Units of work for the request path: each request's database work as one synchronous
function, run as one short transaction.

Why (issue 13): through SQLAlchemy's async ORM on aiosqlite every statement was a
thread hop and an ORM flush; a handover cycle cost ~190 hops and 60–90 ms of CPU, where
the same statements on ``sqlite3`` in one thread cost well under a millisecond. A unit
is a plain function ``work(tx) -> T`` over a synchronous SQLAlchemy Core
:class:`~sqlalchemy.engine.Connection` (compiled statements cached by SQLAlchemy,
prepared statements cached by the driver, plain rows back); the statements themselves
live in the ``gateway.db.*_store`` / ``*_sql`` modules like all SQL.

Two runners, one contract (``write`` commits the unit or nothing; ``read`` sees one
snapshot):

- :class:`SqliteUnits` (SQLite on a file, the default): one **writer thread** with its
  own connection runs the units in order. Units that queue while a commit is in flight
  are **group-committed**: one ``BEGIN IMMEDIATE``, each unit inside its own savepoint
  (a unit that raises rolls back alone and its caller gets the exception), one fsync'd
  ``COMMIT`` for all. A caller hears its result only after that commit. The writer
  takes the same in-process FIFO write turn as SQLAlchemy's ``sessionmaker.begin()``
  (``gateway.db.engine``), so jobs and admin paths queue with it instead of sleeping in
  SQLite's busy handler. Reads run on a reader thread (deferred ``BEGIN`` on a
  ``query_only`` connection: a snapshot that never waits for the writer).
- :class:`SessionUnits` (PostgreSQL, and SQLite ``:memory:``): the unit runs through
  ``AsyncConnection.run_sync`` on the existing async engine — asyncpg under it, no
  thread hop, row locks and advisory locks as everywhere else.

Events a unit emits (``tx.emitted``) are handed to the push notifier after the commit,
in commit order (``publish``): on the SQLite runner the data itself, so local push
sockets need no database read; on the session runner only a wake (commits of concurrent
connections can finish in any order, so the socket reads the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from gateway.db.engine import READ_ONLY_OPTION, install_sqlite_pragmas, write_lock

log = logging.getLogger("gateway.db.units")

T = TypeVar("T")

# Idle time after which the SQLite WAL is checkpointed and truncated when units deleted
# envelope bytes (their older page images would otherwise stay in the WAL file until
# it is recycled). Short enough that a quiet gateway holds nothing of a handed-over
# envelope for long; long enough that a busy one does not pay a checkpoint per receipt.
SCRUB_IDLE_S = 0.5

# Units queued behind one commit that share the next one. Bounded so one commit's
# fsync never waits for an unbounded batch (and a batch's results are not held long).
MAX_GROUP = 64


@dataclass(slots=True)
class Tx:
    """What a unit of work gets: the connection in its transaction, and the events it
    emitted (published to the push notifier after the commit)."""

    conn: Connection
    emitted: list[Any] = field(default_factory=list)
    # Set when the unit deleted envelope bytes kept in the database: the SQLite runner
    # then truncates its WAL once the store is idle (see SqliteUnits.scrub_wal).
    wiped_content: bool = False

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name


Work = Callable[[Tx], T]
Publish = Callable[[list[Any], bool], None]


class Units(Protocol):
    # Called after each commit with the events the unit emitted and whether the data
    # may be delivered from memory (commit order known); set by the app.
    publisher: Publish | None

    async def write(self, work: Work[T]) -> T: ...

    async def read(self, work: Work[T]) -> T: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _Pending(Generic[T]):
    work: Work[T]
    future: asyncio.Future[T]


class SqliteUnits:
    """One writer thread with group commit, one reader thread (module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._async_engine = engine
        self.publisher: Publish | None = None
        url = engine.url.set(drivername="sqlite")
        # StaticPool: each thread below holds exactly one connection for its life.
        self._write_engine = _sync_engine(url)
        self._read_engine = _sync_engine(url)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="stafett-db-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="stafett-db-reader")
        self._write_conn: Connection | None = None
        self._read_conn: Connection | None = None
        self._queue: list[_Pending[Any]] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None  # held: a task must be referenced
        self._closed = False
        self._wiped = False  # envelope bytes deleted since the WAL was last truncated
        self._scrub: asyncio.TimerHandle | None = None
        self._scrubber: asyncio.Task[None] | None = None

    # -- writes ------------------------------------------------------------------------
    async def write(self, work: Work[T]) -> T:
        if self._closed:
            raise RuntimeError("the database store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append(_Pending(work, future))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = self._queue[:MAX_GROUP]
                del self._queue[:MAX_GROUP]
                lock = write_lock(self._async_engine)
                async with lock:
                    try:
                        outcomes = await loop.run_in_executor(
                            self._writer, self._run_group, [p.work for p in batch]
                        )
                    except BaseException as exc:  # the commit itself failed: all fail
                        outcomes = [(False, exc, None)] * len(batch)
                for pending, (ok, value, tx) in zip(batch, outcomes, strict=True):
                    if ok and tx is not None and tx.wiped_content:
                        self._wiped = True
                    if ok and tx is not None and tx.emitted and self.publisher is not None:
                        # In commit order, before any caller runs on: sockets see
                        # events in seq order. A failing publisher must not strand the
                        # callers of units that committed (their sockets read later).
                        try:
                            self.publisher(tx.emitted, True)
                        except Exception:
                            log.exception("could not hand committed events to the sockets")
                    if pending.future.cancelled():
                        continue
                    if ok:
                        pending.future.set_result(value)
                    else:
                        pending.future.set_exception(value)
        finally:
            self._draining = False
        self._arm_scrub()

    def mark_wiped(self) -> None:
        """Envelope bytes were deleted outside a unit (an ORM path: expiry, withdrawal,
        recall): scrub the WAL at the next idle moment, as after a receipt."""
        self._wiped = True
        if not self._draining:
            self._arm_scrub()

    def _arm_scrub(self) -> None:
        if self._wiped and not self._closed:
            if self._scrub is not None:
                self._scrub.cancel()
            self._scrub = asyncio.get_running_loop().call_later(SCRUB_IDLE_S, self._scrub_when_idle)

    def _scrub_when_idle(self) -> None:
        self._scrub = None
        if self._draining or self._closed or not self._wiped:
            return  # busy again: the next idle moment scrubs
        self._scrubber = asyncio.get_running_loop().create_task(self.scrub_wal())

    async def scrub_wal(self) -> None:
        """Checkpoint the WAL into the database file and truncate it to zero bytes.

        Threat: a handed-over envelope's bytes lingering on the gateway's disk. Its rows
        are overwritten in the database pages (``secure_delete``), but the WAL still
        holds the older page images until it is recycled; this drops them. Runs when
        the store is idle (a busy store does it at its next quiet moment) and at
        start-up (``gateway.recovery``). A checkpoint that other connections' readers
        prevent from finishing is retried at the next idle moment.
        """
        loop = asyncio.get_running_loop()
        self._wiped = False
        async with write_lock(self._async_engine):
            busy = await loop.run_in_executor(self._writer, self._truncate_wal)
        if busy:
            self._wiped = True
            self._arm_scrub()  # a reader held it back: the next quiet moment tries again

    def _truncate_wal(self) -> bool:
        conn = self._write_connection()
        raw = conn.connection.driver_connection
        assert raw is not None
        # No waiting for readers (busy_timeout 0): a checkpoint they hold back reports
        # busy and is retried later, instead of holding the writer — and every unit of
        # work queued behind it — for up to the 15 s busy timeout.
        raw.execute("PRAGMA busy_timeout=0")
        try:
            row = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            raw.execute("PRAGMA busy_timeout=15000")
        return bool(row and row[0])

    def _run_group(self, works: list[Work[Any]]) -> list[tuple[bool, Any, Tx | None]]:
        """In the writer thread: one transaction, a savepoint per unit when grouped (a
        single unit's exception rolls the whole transaction back)."""
        conn = self._write_connection()
        raw = conn.connection.driver_connection
        assert raw is not None
        try:
            with conn.begin():  # BEGIN IMMEDIATE (engine hook); COMMIT on leaving
                if len(works) == 1:
                    tx = Tx(conn)
                    return [(True, works[0](tx), tx)]
                return [self._in_savepoint(raw, conn, work) for work in works]
        except BaseException:
            # A failed COMMIT can leave SQLite's transaction open (e.g. a deferred
            # constraint): end it, or the next group's BEGIN would fail too.
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise

    @staticmethod
    def _in_savepoint(raw: Any, conn: Connection, work: Work[Any]) -> tuple[bool, Any, Tx | None]:
        # On the driver's connection: the units' statements run there too
        # (gateway.db.statements), and SQLAlchemy's nested transaction costs ~45 µs more.
        raw.execute("SAVEPOINT unit")
        tx = Tx(conn)
        try:
            value = work(tx)
        except Exception as exc:
            raw.execute("ROLLBACK TO SAVEPOINT unit")
            raw.execute("RELEASE SAVEPOINT unit")
            return False, exc, None
        raw.execute("RELEASE SAVEPOINT unit")
        return True, value, tx

    def _write_connection(self) -> Connection:
        if self._write_conn is None:
            self._write_conn = self._write_engine.connect()
        return self._write_conn

    # -- reads -------------------------------------------------------------------------
    async def read(self, work: Work[T]) -> T:
        if self._closed:
            raise RuntimeError("the database store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._run_read, work)

    def _run_read(self, work: Work[T]) -> T:
        if self._read_conn is None:
            self._read_conn = self._read_engine.connect().execution_options(
                **{READ_ONLY_OPTION: True}
            )
        with self._read_conn.begin():
            return work(Tx(self._read_conn))

    # -- life --------------------------------------------------------------------------
    def close(self) -> None:
        """Close both connections in their own threads, then the threads."""
        if self._closed:
            return
        self._closed = True
        if self._scrub is not None:
            self._scrub.cancel()
        for executor, name in ((self._writer, "_write_conn"), (self._reader, "_read_conn")):
            with contextlib.suppress(RuntimeError):  # interpreter shutting down
                executor.submit(self._close_conn, name).result()
            executor.shutdown(wait=True)
        self._write_engine.dispose()
        self._read_engine.dispose()

    def _close_conn(self, name: str) -> None:
        conn: Connection | None = getattr(self, name)
        if conn is not None:
            conn.close()
            setattr(self, name, None)


def _sync_engine(url: Any) -> Engine:
    # check_same_thread=False: created here, used only by its one executor thread.
    engine = create_engine(
        url,
        poolclass=StaticPool,
        connect_args={"check_same_thread": False},
        hide_parameters=True,  # bound parameters hold subject references (engine.py)
    )
    install_sqlite_pragmas(engine)
    return engine


class SessionUnits:
    """Units through the async engine's own sessions (PostgreSQL; SQLite ``:memory:``)."""

    def __init__(
        self,
        write_maker: Callable[[], Any],
        read_maker: Callable[[], AsyncSession],
    ) -> None:
        self._begin = write_maker
        self._read = read_maker
        self.publisher: Publish | None = None

    async def write(self, work: Work[T]) -> T:
        holder: list[Tx] = []

        def run(conn: Connection) -> T:
            tx = Tx(conn)
            holder.append(tx)
            return work(tx)

        async with self._begin() as session:
            conn = await session.connection()
            value: T = await conn.run_sync(run)
        if holder and holder[0].emitted and self.publisher is not None:
            self.publisher(holder[0].emitted, False)
        return value

    async def read(self, work: Work[T]) -> T:
        async with self._read() as session:
            conn = await session.connection()
            value: T = await conn.run_sync(lambda c: work(Tx(c)))
            return value

    def close(self) -> None:
        """Nothing of its own: the async engine owns the connections."""


async def in_session(session: AsyncSession, work: Work[T]) -> tuple[T, Tx]:
    """Run a unit-of-work function inside an ORM session's transaction (flushed first,
    so its statements see the session's pending rows): the jobs and admin paths use the
    same statements as the request path. Returns the value and the ``Tx`` (its emitted
    events, whether it wiped content)."""
    holder: list[Tx] = []

    def run(sync: Session) -> T:
        sync.flush()
        tx = Tx(sync.connection())
        holder.append(tx)
        return work(tx)

    value: T = await session.run_sync(run)
    return value, holder[0]


def make_units(engine: AsyncEngine, maker: async_sessionmaker[AsyncSession]) -> Units:
    """The runner for ``engine``, closed with it (``engine.dispose()``)."""
    units: Units
    if _runs_in_own_thread(engine):
        units = SqliteUnits(engine)
    else:
        begin: Callable[[], Any] = maker.begin
        units = SessionUnits(begin, maker)
    return units


def _runs_in_own_thread(engine: AsyncEngine) -> bool:
    """SQLite on a file gets the writer thread; ``:memory:`` is private to one
    connection, so a second (threaded) connection would see another database."""
    url = engine.url
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")

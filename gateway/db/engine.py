"""Open the engine and the session maker; SQLite gets the pragmas a server needs.

Two kinds of transaction, by how they are opened (the convention everywhere in
``gateway``):

- ``async with sessionmaker.begin() as session`` — a unit of work that may write. On
  SQLite it starts with ``BEGIN IMMEDIATE``: the single write lock is taken up front.
- ``async with sessionmaker() as session`` — a read. On SQLite it starts with a plain
  (deferred) ``BEGIN`` on a connection switched to ``PRAGMA query_only``: it reads a WAL
  snapshot without queueing behind the writer, and it *cannot* write (SQLite refuses),
  so a read-modify-write that was opened the wrong way fails loudly in tests instead of
  racing in production.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.asyncio.session import _AsyncSessionContextManager

if TYPE_CHECKING:
    from gateway.db.units import Units


# Execution option that marks a read-only bind (see StoreSessionMaker).
READ_ONLY_OPTION = _READ_ONLY = "stafett_read_only"
_QUERY_ONLY_STATE = "stafett_query_only"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def open_engine(url: str) -> AsyncEngine:
    """Create the engine for ``url`` (``sqlite+aiosqlite:///…`` or ``postgresql+asyncpg://…``)."""
    # hide_parameters: SQLAlchemy puts bound parameters into exception text, and those
    # hold subject references and consent ids; an error logged anywhere must not leak them.
    if not is_sqlite(url):
        # pool_pre_ping: a PostgreSQL restart must not turn into 500s on stale connections.
        # 10 + 10: concurrent handovers each hold a connection for their unit of work;
        # with SQLAlchemy's 5 + 10, connections beyond 5 were closed on return and opened
        # again under load (measured: 16 → 12 ms of CPU per handover cycle, bench relay
        # --store postgresql). Two engines per instance (the blob store's readers), two
        # instances: 80 connections, inside PostgreSQL's default max_connections (100).
        return create_async_engine(
            url, pool_pre_ping=True, hide_parameters=True, pool_size=10, max_overflow=10
        )
    engine = create_async_engine(url, hide_parameters=True)
    install_sqlite_pragmas(engine.sync_engine)
    return engine


def install_sqlite_pragmas(engine: Engine) -> None:
    """The pragmas and BEGIN discipline of every SQLite connection the gateway opens
    (the async engine's pool and the unit-of-work threads, ``gateway.db.units``)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite/aiosqlite would otherwise defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers do not block the writer. busy_timeout: a second writer waits
        # instead of failing with "database is locked". foreign_keys: SQLite ignores
        # ON DELETE CASCADE without it, and content deletion relies on the cascade.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: every commit is fsync'd before the client hears "accepted". In WAL mode
        # NORMAL only syncs at checkpoints, so a power loss can roll back transactions
        # that were already acknowledged — an accepted message, a receipt, an audit entry
        # or a stored nonce (a replay window after restart). Threat: losing data that
        # was accepted. Not a tuning knob.
        cursor.execute("PRAGMA synchronous=FULL")
        # Deleted rows are overwritten with zeros, not left in free pages where a copy
        # of the file (a backup, a stolen disk) would still show ended messages'
        # metadata and consents' subject references. Set here on every connection, not
        # left to how the SQLite library was built (SQLITE_SECURE_DELETE). The WAL keeps
        # older page images only until its next checkpoint overwrites them.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = bool(conn.get_execution_options().get(_READ_ONLY, False))
        info = conn.connection.info  # lives as long as the pooled DBAPI connection
        if info.get(_QUERY_ONLY_STATE) is not read_only:
            # Only when this pooled connection changes role: one cheap pragma, no I/O.
            conn.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
            info[_QUERY_ONLY_STATE] = read_only
        if read_only:
            # Deferred: a snapshot read that never waits for (or holds) the write lock.
            conn.exec_driver_sql("BEGIN")
        else:
            # BEGIN IMMEDIATE takes the write lock up front, so two transactions never
            # both read the audit head and then race to append (a forked chain), and a
            # reader never deadlocks when it later upgrades to a writer.
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class _SerialisedBegin(_AsyncSessionContextManager[AsyncSession]):
    """``sessionmaker.begin()`` that first queues for this process's SQLite write turn.

    Why: SQLite has one write lock per file, and ``BEGIN IMMEDIATE`` on a second pooled
    connection does not queue for it — it sleeps in SQLite's busy handler and polls with
    growing back-off (up to 100 ms a try). Under concurrency the in-process writers then
    spend their time asleep while the lock is free, throughput collapses, and an unlucky
    writer can starve past ``busy_timeout`` ("database is locked", a 500). An asyncio
    lock hands the turn over in FIFO order the moment the previous unit of work ends.
    The busy timeout still covers writers in *other* processes (``migrate``, a CLI).
    """

    __slots__ = ("_engine", "_lock")

    def __init__(self, session: AsyncSession, engine: AsyncEngine) -> None:
        super().__init__(session)
        self._engine = engine
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> AsyncSession:
        self._lock = write_lock(self._engine)  # here: needs the running loop
        await self._lock.acquire()
        try:
            return await super().__aenter__()
        except BaseException:
            self._lock.release()
            raise

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        try:
            await super().__aexit__(type_, value, traceback)  # commit/rollback, shielded
        finally:
            if self._lock is not None:
                self._lock.release()


# One write turn per engine (per database file in this process) and event loop: an
# asyncio.Lock belongs to one loop, and tests run an engine's life in one loop each.
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def write_lock(engine: AsyncEngine) -> asyncio.Lock:
    """This process's FIFO write turn on ``engine`` (SQLite), in the running loop."""
    loop = asyncio.get_running_loop()
    known = _WRITE_LOCKS.get(engine.sync_engine)
    if known is None or known[0] is not loop:
        known = _WRITE_LOCKS[engine.sync_engine] = (loop, asyncio.Lock())
    return known[1]


class StoreSessionMaker(async_sessionmaker[AsyncSession]):
    """``maker()`` opens a read session, ``maker.begin()`` a unit of work that writes.

    On SQLite the read session is bound to the same engine (same pool) with an
    execution option that the ``begin`` hook turns into a deferred, query-only
    transaction, and units of work queue for the write lock in-process (see
    ``_SerialisedBegin``). On PostgreSQL both are the same: MVCC readers never wait for
    writers, and writers only wait on the rows (and advisory locks) they touch.

    Do not open a unit of work while holding another on the same SQLite store: it would
    wait for itself (as ``BEGIN IMMEDIATE`` always did).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, expire_on_commit=False)
        self._write_engine = engine
        self._read_engine = (
            engine.execution_options(**{_READ_ONLY: True})
            if engine.dialect.name == "sqlite"
            else engine
        )
        self._units: Units | None = None

    @property
    def units(self) -> Units:
        """The request path's units of work on this store (``gateway.db.units``)."""
        if self._units is None:
            from gateway.db.units import make_units  # units builds on this module

            units = self._units = make_units(self._write_engine, self)

            @event.listens_for(self._write_engine.sync_engine, "engine_disposed", once=True)
            def _closed(_engine: Engine) -> None:
                # A disposed engine may be used again: it then gets fresh units.
                units.close()
                if self._units is units:
                    self._units = None

        return self._units

    def __call__(self, **local_kw: Any) -> AsyncSession:
        local_kw.setdefault("bind", self._read_engine)
        return super().__call__(**local_kw)

    def begin(self) -> _AsyncSessionContextManager[AsyncSession]:
        session = super().__call__(bind=self._write_engine)
        if self._read_engine is self._write_engine:  # PostgreSQL: row locks, no queue
            return session._maker_context_manager()
        return _SerialisedBegin(session, self._write_engine)


SessionMaker = StoreSessionMaker


def make_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    # expire_on_commit=False: rows stay readable after commit without lazy I/O in views.
    return StoreSessionMaker(engine)

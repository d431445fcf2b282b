"""Open the engine and the session maker; SQLite gets the pragmas a server needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionMaker = async_sessionmaker[AsyncSession]


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def open_engine(url: str) -> AsyncEngine:
    """Create the engine for ``url`` (``sqlite+aiosqlite:///…`` or ``postgresql+asyncpg://…``)."""
    # hide_parameters: SQLAlchemy puts bound parameters into exception text, and those
    # hold subject references and consent ids; an error logged anywhere must not leak them.
    if not is_sqlite(url):
        # pool_pre_ping: a PostgreSQL restart must not turn into 500s on stale connections.
        return create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
    engine = create_async_engine(url, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
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
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front, so two transactions never both
        # read the audit head and then race to append (a forked chain), and a reader
        # never deadlocks when it later upgrades to a writer.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    # expire_on_commit=False: rows stay readable after commit without lazy I/O in views.
    return async_sessionmaker(engine, expire_on_commit=False)

"""Statements of the units of work, run through the driver's own cursor on SQLite.

Each is a SQLAlchemy Core statement (so the SQL is written once, in Core, and
PostgreSQL runs it through SQLAlchemy as usual). On the SQLite writer and reader
threads (``gateway.db.units``) it is compiled once for the dialect, and executed on
the ``sqlite3`` connection with its positional parameters: no per-call compile-cache
lookup, execution context or result wrapping, and ``sqlite3`` keeps the prepared
statement in its own cache. Measured: a primary-key SELECT costs ~40 µs through
SQLAlchemy's Connection here and ~12 µs this way (issue 13).

Only values that need no type processing pass through here (str, int, bytes, None):
the tables of the handover path hold nothing else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

Params = Mapping[str, Any]


class Statement:
    """One Core statement; ``column_keys``: the columns an INSERT without values sets."""

    __slots__ = ("_compiled", "_keys", "stmt")

    def __init__(self, stmt: Executable, column_keys: Sequence[str] | None = None) -> None:
        self.stmt = stmt
        self._keys = list(column_keys) if column_keys is not None else None
        self._compiled: tuple[str, tuple[str, ...]] | None = None

    def _sqlite(self, conn: Connection) -> sqlite3.Connection | None:
        raw = conn.connection.driver_connection
        return raw if isinstance(raw, sqlite3.Connection) else None

    def _sql(self, conn: Connection) -> tuple[str, tuple[str, ...]]:
        if self._compiled is None:
            assert isinstance(self.stmt, ClauseElement)
            compiled = self.stmt.compile(dialect=conn.dialect, column_keys=self._keys)
            assert isinstance(compiled, SQLCompiler)
            self._compiled = (compiled.string, tuple(compiled.positiontup or ()))
        return self._compiled

    def _cursor(self, conn: Connection, params: Params) -> sqlite3.Cursor | None:
        raw = self._sqlite(conn)
        if raw is None:
            return None
        sql, names = self._sql(conn)
        return raw.execute(sql, tuple(params[n] for n in names))

    def first(self, conn: Connection, params: Params) -> tuple[Any, ...] | None:
        cursor = self._cursor(conn, params)
        if cursor is None:
            row = conn.execute(self.stmt, dict(params)).first()
            return None if row is None else tuple(row)
        found: tuple[Any, ...] | None = cursor.fetchone()
        cursor.close()
        return found

    def all(self, conn: Connection, params: Params) -> list[tuple[Any, ...]]:
        cursor = self._cursor(conn, params)
        if cursor is None:
            return [tuple(r) for r in conn.execute(self.stmt, dict(params))]
        return list(cursor.fetchall())

    def scalar(self, conn: Connection, params: Params) -> Any:
        row = self.first(conn, params)
        return None if row is None else row[0]

    def run(self, conn: Connection, params: Params) -> int:
        """Execute; the number of rows it changed."""
        cursor = self._cursor(conn, params)
        if cursor is None:
            return int(conn.execute(self.stmt, dict(params)).rowcount)
        return int(cursor.rowcount)

    def run_many(self, conn: Connection, rows: Iterable[Params]) -> None:
        batch = list(rows)
        if not batch:
            return
        raw = self._sqlite(conn)
        if raw is None:
            conn.execute(self.stmt, [dict(r) for r in batch])
            return
        sql, names = self._sql(conn)
        raw.executemany(sql, [tuple(r[n] for n in names) for r in batch])

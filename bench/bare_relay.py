"""The floor for ``bench/relay.py``: a bare aiohttp relay on SQLite or PostgreSQL, no
security at all.

It does only what a relay cannot avoid doing — and what the gateway does too, with the
same durability — so the ratio gateway ÷ bare says what authentication, consent,
audit, events and envelope verification cost, not what HTTP and the database cost:

- ``PUT /m/{id}?to=R``: the body stored durably, a row for it; recipient notified.
  SQLite (the default, beside the gateway on SQLite with directory blobs): body written
  to ``.part``, fsync, rename into place; row in SQLite (WAL, ``synchronous=FULL``, like
  the gateway). PostgreSQL (beside the gateway on PostgreSQL with the PostgreSQL blob
  store; its own database ``bare`` on the gateway's throwaway cluster, so the same
  ``fsync``/``synchronous_commit`` settings): asyncpg used directly, the body in a
  ``bytea`` column of the message's row, one autocommitted INSERT. One row rather than a
  row plus a chunk table: on PostgreSQL one commit makes both body and row durable, so
  that is the least a relay must do — the gateway's separate upload/chunk bookkeeping is
  part of what the ratio measures, not part of the floor;
- ``GET /ws?me=R``: WebSocket; one text frame ``{"id": ...}`` per message for ``R``
  (in memory only: no resumable event log);
- ``GET /m/{id}``: the body;
- ``DELETE /m/{id}``: row deleted (and on SQLite the file unlinked): the "receipt".

No authentication, no consent, no audit, no signatures, no persistence of
notifications. Never expose it: it is a measuring stick, not a service.
Run: ``python bench/bare_relay.py serve <dir> [postgresql://DSN]`` (prints
``{"port": N}`` once listening); ``python -m bench.run bare_relay --quick`` measures
the SQLite floor alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import asyncpg
from aiohttp import WSMsgType, web

_ID = re.compile(r"^[0-9a-f-]{36}$")
_NAME = re.compile(r"^[a-z0-9/-]{1,140}$")

# The PostgreSQL floor's pool: SQLAlchemy's default for the gateway's engine (pool_size
# 5 + max_overflow 10), so neither side waits for connections the other has.
PG_POOL = (5, 15)


class Store(Protocol):
    """Where the floor keeps a message: rows + body, durable before ``put`` returns."""

    async def put(self, mid: str, recipient: str, data: bytes) -> None: ...

    async def get(self, mid: str) -> bytes | None: ...

    async def delete(self, mid: str) -> bool: ...


ROOT = web.AppKey("root", Path)
DSN = web.AppKey("dsn", str)  # "": SQLite in ROOT
STORE = web.AppKey("store", Store)
SOCKETS = web.AppKey("sockets", dict[str, set[web.WebSocketResponse]])


def _message_id(request: web.Request) -> str:
    mid = request.match_info["message_id"]
    if not _ID.match(mid):
        raise web.HTTPBadRequest()
    return mid


def _write_durably(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.part")
    with open(temp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    temp.rename(path)


class SqliteStore:
    """Body in an fsync'd file, row in SQLite (WAL, ``synchronous=FULL``)."""

    def __init__(self, root: Path, db: aiosqlite.Connection) -> None:
        self.root, self.db = root, db
        # One writer at a time, as SQLite has one anyway (the gateway: BEGIN IMMEDIATE).
        self.lock = asyncio.Lock()

    async def put(self, mid: str, recipient: str, data: bytes) -> None:
        await asyncio.to_thread(_write_durably, self.root / mid, data)
        async with self.lock:
            await self.db.execute("BEGIN IMMEDIATE")
            await self.db.execute(
                "INSERT INTO messages (id, recipient, size, created) VALUES (?, ?, ?, ?)",
                (mid, recipient, len(data), int(time.time())),
            )
            await self.db.commit()

    async def get(self, mid: str) -> bytes | None:
        async with self.db.execute("SELECT size FROM messages WHERE id = ?", (mid,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return await asyncio.to_thread((self.root / mid).read_bytes)

    async def delete(self, mid: str) -> bool:
        async with self.lock:
            await self.db.execute("BEGIN IMMEDIATE")
            cursor = await self.db.execute("DELETE FROM messages WHERE id = ?", (mid,))
            await self.db.commit()
        if cursor.rowcount != 1:
            return False
        await asyncio.to_thread((self.root / mid).unlink)
        return True


class PostgresStore:
    """Row with the body in ``bytea``; each statement its own (autocommitted) transaction.

    asyncpg prepares and caches each statement on its connection, as a relay written for
    speed would. No lock: PostgreSQL has concurrent writers.
    """

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def put(self, mid: str, recipient: str, data: bytes) -> None:
        await self.pool.execute(
            "INSERT INTO messages (id, recipient, size, created, body) VALUES ($1, $2, $3, $4, $5)",
            mid,
            recipient,
            len(data),
            int(time.time()),
            data,
        )

    async def get(self, mid: str) -> bytes | None:
        body = await self.pool.fetchval("SELECT body FROM messages WHERE id = $1", mid)
        return None if body is None else bytes(body)

    async def delete(self, mid: str) -> bool:
        status = await self.pool.execute("DELETE FROM messages WHERE id = $1", mid)
        return bool(status == "DELETE 1")


async def put_message(request: web.Request) -> web.Response:
    mid = _message_id(request)
    recipient = request.query.get("to", "")
    if not _NAME.match(recipient):
        raise web.HTTPBadRequest()
    data = await request.read()
    await request.app[STORE].put(mid, recipient, data)
    frame = json.dumps({"id": mid})
    for ws in list(request.app[SOCKETS].get(recipient, ())):
        await ws.send_str(frame)
    return web.json_response({"id": mid}, status=201)


async def get_message(request: web.Request) -> web.StreamResponse:
    data = await request.app[STORE].get(_message_id(request))
    if data is None:
        raise web.HTTPNotFound()
    return web.Response(body=data, content_type="application/octet-stream")


async def delete_message(request: web.Request) -> web.Response:
    mid = _message_id(request)
    if not await request.app[STORE].delete(mid):
        raise web.HTTPNotFound()
    return web.json_response({"id": mid, "state": "deleted"})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    me = request.query.get("me", "")
    if not _NAME.match(me):
        raise web.HTTPBadRequest()
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    sockets = request.app[SOCKETS].setdefault(me, set())
    sockets.add(ws)
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        sockets.discard(ws)
    return ws


async def _database(app: web.Application) -> AsyncIterator[None]:
    if app[DSN]:
        pool = await asyncpg.create_pool(app[DSN], min_size=PG_POOL[0], max_size=PG_POOL[1])
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, recipient TEXT NOT "
            "NULL, size INTEGER, created BIGINT, body BYTEA NOT NULL)"
        )
        app[STORE] = PostgresStore(pool)
        try:
            yield
        finally:
            await pool.close()
        return
    db = await aiosqlite.connect(app[ROOT] / "bare.sqlite3", isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=15000"):
        await db.execute(f"PRAGMA {pragma}")
    await db.execute(
        "CREATE TABLE IF NOT EXISTS messages "
        "(id TEXT PRIMARY KEY, recipient TEXT NOT NULL, size INTEGER, created INTEGER)"
    )
    app[STORE] = SqliteStore(app[ROOT], db)
    try:
        yield
    finally:
        await db.close()


def create_app(root: Path, dsn: str = "") -> web.Application:
    app = web.Application()
    app[ROOT] = root
    app[DSN] = dsn
    app[SOCKETS] = {}
    app.cleanup_ctx.append(_database)
    app.router.add_put("/m/{message_id}", put_message)
    app.router.add_get("/m/{message_id}", get_message)
    app.router.add_delete("/m/{message_id}", delete_message)
    app.router.add_get("/ws", websocket)
    return app


async def serve(root: Path, dsn: str = "") -> None:
    runner = web.AppRunner(create_app(root, dsn), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"port": port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(quick: bool) -> dict[str, Any]:
    """``python -m bench.run bare_relay``: the floor alone (``relay`` runs it with the
    gateway). Imported here: ``relay`` imports this module's path, not the reverse."""
    from bench import relay

    return asyncio.run(relay.run_levels(quick, ("bare",)))


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "serve":
        Path(sys.argv[2]).mkdir(parents=True, exist_ok=True)
        asyncio.run(serve(Path(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else ""))
    else:
        raise SystemExit(
            "use: python bench/bare_relay.py serve <dir> [postgresql://DSN]  "
            "(or python -m bench.run relay)"
        )

"""The floor for ``bench/relay.py``: a bare aiohttp + SQLite relay, no security at all.

It does only what a relay cannot avoid doing — and what the gateway does too, with the
same durability — so the ratio gateway ÷ bare says what authentication, consent,
audit, events and envelope verification cost, not what HTTP and SQLite cost:

- ``PUT /m/{id}?to=R``: body written to ``.part``, fsync, rename into place; row in
  SQLite (WAL, ``synchronous=FULL``, like the gateway); recipient notified;
- ``GET /ws?me=R``: WebSocket; one text frame ``{"id": ...}`` per message for ``R``
  (in memory only: no resumable event log);
- ``GET /m/{id}``: the body;
- ``DELETE /m/{id}``: row deleted, file unlinked (the "receipt").

No authentication, no consent, no audit, no signatures, no persistence of
notifications. Never expose it: it is a measuring stick, not a service.
Run: ``python bench/bare_relay.py serve <dir>`` (prints ``{"port": N}`` once listening);
``python -m bench.run bare_relay --quick`` measures the floor alone.
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
from typing import Any

import aiosqlite
from aiohttp import WSMsgType, web

_ID = re.compile(r"^[0-9a-f-]{36}$")
_NAME = re.compile(r"^[a-z0-9/-]{1,140}$")

DB = web.AppKey("db", aiosqlite.Connection)
ROOT = web.AppKey("root", Path)
SOCKETS = web.AppKey("sockets", dict[str, set[web.WebSocketResponse]])
LOCK = web.AppKey("lock", asyncio.Lock)


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


async def put_message(request: web.Request) -> web.Response:
    mid = _message_id(request)
    recipient = request.query.get("to", "")
    if not _NAME.match(recipient):
        raise web.HTTPBadRequest()
    data = await request.read()
    path = request.app[ROOT] / mid
    await asyncio.to_thread(_write_durably, path, data)
    db = request.app[DB]
    # One writer at a time, as SQLite has one anyway (the gateway: BEGIN IMMEDIATE).
    async with request.app[LOCK]:
        await db.execute("BEGIN IMMEDIATE")
        await db.execute(
            "INSERT INTO messages (id, recipient, size, created) VALUES (?, ?, ?, ?)",
            (mid, recipient, len(data), int(time.time())),
        )
        await db.commit()
    frame = json.dumps({"id": mid})
    for ws in list(request.app[SOCKETS].get(recipient, ())):
        await ws.send_str(frame)
    return web.json_response({"id": mid}, status=201)


async def get_message(request: web.Request) -> web.StreamResponse:
    mid = _message_id(request)
    async with request.app[DB].execute("SELECT size FROM messages WHERE id = ?", (mid,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise web.HTTPNotFound()
    data = await asyncio.to_thread((request.app[ROOT] / mid).read_bytes)
    return web.Response(body=data, content_type="application/octet-stream")


async def delete_message(request: web.Request) -> web.Response:
    mid = _message_id(request)
    db = request.app[DB]
    async with request.app[LOCK]:
        await db.execute("BEGIN IMMEDIATE")
        cursor = await db.execute("DELETE FROM messages WHERE id = ?", (mid,))
        await db.commit()
    if cursor.rowcount != 1:
        raise web.HTTPNotFound()
    await asyncio.to_thread((request.app[ROOT] / mid).unlink)
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
    db = await aiosqlite.connect(app[ROOT] / "bare.sqlite3", isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=15000"):
        await db.execute(f"PRAGMA {pragma}")
    await db.execute(
        "CREATE TABLE IF NOT EXISTS messages "
        "(id TEXT PRIMARY KEY, recipient TEXT NOT NULL, size INTEGER, created INTEGER)"
    )
    app[DB] = db
    try:
        yield
    finally:
        await db.close()


def create_app(root: Path) -> web.Application:
    app = web.Application()
    app[ROOT] = root
    app[SOCKETS] = {}
    app[LOCK] = asyncio.Lock()
    app.cleanup_ctx.append(_database)
    app.router.add_put("/m/{message_id}", put_message)
    app.router.add_get("/m/{message_id}", get_message)
    app.router.add_delete("/m/{message_id}", delete_message)
    app.router.add_get("/ws", websocket)
    return app


async def serve(root: Path) -> None:
    runner = web.AppRunner(create_app(root), access_log=None)
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
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        Path(sys.argv[2]).mkdir(parents=True, exist_ok=True)
        asyncio.run(serve(Path(sys.argv[2])))
    else:
        raise SystemExit(
            "use: python bench/bare_relay.py serve <dir>  (or python -m bench.run relay)"
        )

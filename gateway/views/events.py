"""GET /v1/events?after=SEQ — the caller device's inbox and outbox events over a WebSocket.

The upgrade request is an ordinary signed GET: ``gateway.auth.auth_middleware`` has
verified the device's RFC 9421 signature (and its nonce) before this handler runs, so an
unauthenticated upgrade never reaches it. The stream then sends every event of the
caller's *device* with seq > ``after`` (the backlog), then live events as they commit.
A client that reconnects passes the last seq it processed and misses nothing.

Each text frame is one event, JSON ``{"seq","kind","message_id","created","data"}``.
The server expects no data frames from the client; one is a protocol violation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from functools import partial
from typing import TypeVar

from aiohttp import WSCloseCode, WSMsgType, web

from gateway.appkeys import DIRECTORY, NOTIFIER, PUSH_HUB, SESSIONMAKER, SETTINGS
from gateway.auth import caller_of, require_device
from gateway.services.events import Event, stream_batch
from gateway.views.jsonbody import query_int
from keys.crypto.keypairs import KeyId
from keys.protocol.directory import Directory
from keys.protocol.problems import BadRequest, RateLimited

log = logging.getLogger("gateway.push.sockets")
T = TypeVar("T")

# Nothing the client may send is larger than a close frame: a tiny limit means a peer
# cannot make us buffer megabytes it was never supposed to send.
_MAX_CLIENT_FRAME = 1024
_CLOSE_TIMEOUT_S = 5.0
_SLOW_CONSUMER = WSCloseCode.TRY_AGAIN_LATER  # 1013: "resume with ?after later"


async def get_events(request: web.Request) -> web.WebSocketResponse:
    caller = caller_of(request)
    device = str(require_device(caller))  # admins have no inbox
    after = query_int(request, "after", default=0, minimum=0, maximum=2**53 - 1)
    app = request.app
    settings = app[SETTINGS]
    ws = web.WebSocketResponse(
        heartbeat=settings.push_heartbeat_s,
        max_msg_size=_MAX_CLIENT_FRAME,
        timeout=_CLOSE_TIMEOUT_S,
    )
    if not ws.can_prepare(request).ok:
        raise BadRequest("this endpoint is a WebSocket: send an Upgrade request")
    hub = app[PUSH_HUB]
    if not hub.register(device, ws):
        raise RateLimited("too many open event streams for this device")
    try:
        await ws.prepare(request)
        await _stream(request, ws, caller.kid, after)
    finally:
        hub.unregister(device, ws)
    return ws


async def _stream(request: web.Request, ws: web.WebSocketResponse, kid: KeyId, after: int) -> None:
    settings = request.app[SETTINGS]
    # Bounded: a client that reads slowly holds at most this many events in our memory;
    # the producer waits (the database keeps the rest, fetched when there is room).
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=settings.push_queue_size)
    producer = asyncio.create_task(_produce(request, ws, queue, kid, after))
    sender = asyncio.create_task(_send(ws, queue, settings.push_send_timeout_s))
    try:
        # Reading is what processes pongs and the client's close frame.
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"no data expected")
                break
    finally:
        for task in (producer, sender):
            task.cancel()
        for task in (producer, sender):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _produce(
    request: web.Request,
    ws: web.WebSocketResponse,
    queue: asyncio.Queue[Event],
    kid: KeyId,
    after: int,
) -> None:
    app = request.app
    device = str(kid.device)
    notifier = app[NOTIFIER]
    # Fallback only: local commits wake the notifier at once and gateway.push.sockets polls for
    # other instances, so this timeout just bounds the damage of a lost wake.
    safety_s = max(app[SETTINGS].events_poll_interval_s, app[SETTINGS].push_heartbeat_s)
    cursor = after
    read_at: int | None = None  # the notifier's stale generation of our last read
    try:
        while not ws.closed:
            # Read the generation *before* the query: a wake between the query and the
            # wait is then not lost. Per device: commits for other devices do not wake us.
            generation = notifier.generation_of(device)
            stale = notifier.stale_generation(device)
            remembered = _from_memory(app, kid, device, cursor, queue.maxsize, read_at == stale)
            if remembered is None:
                read_at = stale
                valid, batch = await _complete(_read_batch(app, kid, device, cursor, queue.maxsize))
                if len(batch) == queue.maxsize:
                    read_at = None  # more may be waiting in the database: read again
            else:
                valid, batch = True, remembered
            if not valid:
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"key not valid")
                return
            for item in batch:
                await queue.put(item)
                cursor = item.seq
            if len(batch) < queue.maxsize and not await notifier.wait(
                safety_s, since=generation, device=device
            ):
                # Idle for safety_s: read the database (and the directory) again, so a
                # revocation stored by another instance closes an idle socket in time.
                read_at = None
    except asyncio.CancelledError:
        raise
    except Exception:
        # The client resumes from its last seq; nothing is lost by closing.
        log.exception("event stream failed; closing the socket")
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error")


def _from_memory(
    app: web.Application, kid: KeyId, device: str, cursor: int, limit: int, current: bool
) -> list[Event] | None:
    """The device's next events from the notifier's memory, or None to read the database.

    ``current``: nothing but published events arrived since our last database read
    (``Notifier.stale_generation``). The key is checked against the directory this
    instance holds (caught up by every unit of work that finds it behind, and checked
    against the database whenever the socket was idle for safety_s): a revocation
    stops the stream at the next event at the latest.
    """
    if not current:
        return None
    recent = app[NOTIFIER].recent(device, cursor)
    if recent is None:
        return None
    if recent and not _key_still_valid(app[DIRECTORY].directory, kid):
        return None  # the database read decides (and refreshes the directory)
    return [e for e in recent[:limit] if isinstance(e, Event)]


async def _read_batch(
    app: web.Application, kid: KeyId, device: str, cursor: int, limit: int
) -> tuple[bool, list[Event]]:
    """(key still valid, next events): one read (a snapshot on the store's reader, which
    neither waits for nor holds the write lock) of the events and the directory's size.

    Threat: a lost laptop revoked while its socket is open. The upgrade was
    authenticated once; before every batch the key must still be valid in the directory
    as stored (the copy held here catches up when the size says it is behind), so
    nothing is sent after the revocation is stored (an idle socket notices within
    safety_s at the latest).
    """
    sessionmaker = app[SESSIONMAKER]
    size, batch = await sessionmaker.units.read(
        partial(stream_batch, device=device, after=cursor, limit=limit)
    )
    directory = app[DIRECTORY].directory
    if size != directory.size:
        directory = await app[DIRECTORY].catch_up(sessionmaker)
    if not _key_still_valid(directory, kid):
        return False, []
    return True, batch


async def _complete(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile.

    A socket that closes cancels its producer, often in the middle of a query. A
    database session cancelled mid-statement can leave its pooled connection inside an
    open transaction (seen as "database is locked" for every later writer on SQLite).
    The read runs in its own task, shielded; on cancellation we still wait for it to
    close its session, then pass the cancellation on.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.shield(task)
        raise


def _key_still_valid(directory: Directory, kid: KeyId) -> bool:
    """The same status rule as ``gateway.auth``: unrevoked, current, active version."""
    record = directory.devices.get(str(kid.device))
    if record is None or record.revoked:
        return False
    version = record.versions.get(kid.version)
    return (
        version is not None and kid.version == record.current_version and version.status == "active"
    )


async def _send(ws: web.WebSocketResponse, queue: asyncio.Queue[Event], timeout_s: float) -> None:
    try:
        while True:
            item = await queue.get()
            text = json.dumps(item.to_json(), separators=(",", ":"), ensure_ascii=False)
            async with asyncio.timeout(timeout_s):
                await ws.send_str(text)
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        # Threat: a client that never reads pins a socket and a queue forever.
        await ws.close(code=_SLOW_CONSUMER, message=b"too slow; resume with ?after")
    except ConnectionError:
        await ws.close(code=WSCloseCode.GOING_AWAY)

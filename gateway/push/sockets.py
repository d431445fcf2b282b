"""Push-stream wiring: open sockets per device, the cross-instance poll, clean shutdown.

The stream handler itself is ``gateway.views.events``; this module holds what outlives a
single request: the registry of open sockets (so shutdown can close them and a device
cannot open unbounded many) and the one background task per instance that notices
events committed by *another* instance on the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, web

from gateway.appkeys import NOTIFIER, PUSH_HUB, SESSIONMAKER, SETTINGS
from gateway.db.engine import SessionMaker
from gateway.push.notifier import Notifier
from gateway.services.events import devices_after, last_seq

log = logging.getLogger("gateway.push.sockets")

# Above this many new events in one poll interval, waking every socket is cheaper than
# listing the devices concerned.
_POLL_DEVICES_MAX = 10_000


class PushHub:
    """Open event sockets of this instance, counted per device."""

    def __init__(self, max_per_device: int) -> None:
        self.max_per_device = max_per_device
        self.sockets: set[web.WebSocketResponse] = set()
        self._per_device: Counter[str] = Counter()
        self.closing = False

    def register(self, device: str, ws: web.WebSocketResponse) -> bool:
        """Track ``ws``; False when the device is at its limit or we are shutting down.

        Threat: a device (or a stolen key) opening sockets until the instance runs out
        of file descriptors and memory; each socket also holds a database poll.
        """
        if self.closing or self._per_device[device] >= self.max_per_device:
            return False
        self._per_device[device] += 1
        self.sockets.add(ws)
        return True

    def unregister(self, device: str, ws: web.WebSocketResponse) -> None:
        if ws in self.sockets:
            self.sockets.discard(ws)
            self._per_device[device] -= 1
            if self._per_device[device] <= 0:
                del self._per_device[device]

    def count(self, device: str) -> int:
        return self._per_device[device]

    async def close_all(self) -> None:
        """Say "going away" to every client so it reconnects (to another instance)."""
        self.closing = True
        sockets = list(self.sockets)
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown") for ws in sockets),
            return_exceptions=True,
        )


async def watch_events(sessionmaker: SessionMaker, notifier: Notifier, interval_s: float) -> None:
    """Wake local sockets of devices whose events another instance committed.

    One cheap read per instance per interval, however many sockets are open (a
    deferred read on SQLite: it never queues behind the writer); the sockets themselves
    only read when woken, and only the devices with new events are woken. Each round
    catches and logs its own error so a database hiccup does not end cross-instance
    delivery for good.
    """
    seen: int | None = None
    while True:
        try:
            async with sessionmaker() as session:
                newest = await last_seq(session)
                devices: set[str] | None = set()
                if seen is not None and newest != seen:
                    if seen < newest <= seen + _POLL_DEVICES_MAX:
                        devices = await devices_after(
                            session, after=seen, upto=newest, known=notifier.was_published
                        )
                    else:
                        devices = None  # a restored backup or a burst: wake everyone
            if devices is None or devices:
                notifier.wake(devices)
            seen = newest
        except Exception:
            log.exception("event poll failed")
        await asyncio.sleep(interval_s)


async def push_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the poll task for the app's lifetime (after the database is open)."""
    task = asyncio.create_task(
        watch_events(app[SESSIONMAKER], app[NOTIFIER], app[SETTINGS].events_poll_interval_s)
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: runs before cleanup, so sockets close while the database is open."""
    await app[PUSH_HUB].close_all()


def setup_push(app: web.Application) -> None:
    """Register the hub, the poll and the shutdown hook. Call after the database ctx."""
    app[PUSH_HUB] = PushHub(app[SETTINGS].push_max_sockets_per_device)
    app.cleanup_ctx.append(push_context)
    app.on_shutdown.append(close_sockets)

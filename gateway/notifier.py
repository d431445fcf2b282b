"""In-process wake-up for the push stream: "new events may be in the database".

The notifier carries no data, only a generation counter: the database stays the one
source of truth, and a socket that is woken reads its events from there. A waiter passes
the generation it saw *before* reading the database, so a wake that happens between its
read and its wait is not lost (it returns at once instead of sleeping until the poll).

Events from another gateway instance on the same PostgreSQL do not wake this notifier;
``gateway.views.events`` polls for those.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine


class Notifier:
    """``wake()`` from anywhere in the loop; ``await wait(timeout, since=...)`` to sleep."""

    def __init__(self) -> None:
        self._generation = 0
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def wake(self) -> None:
        """Wake every current waiter (cheap; safe to call when nobody waits)."""
        self._generation += 1
        event, loop = self._event, self._loop
        if event is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            # Called from another thread: asyncio primitives are not thread-safe.
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)

    # The timeout is part of the contract (a socket wakes for its poll/heartbeat on it),
    # not a cancellation scope around the caller's work, so ASYNC109 does not apply.
    async def wait(self, timeout: float, *, since: int | None = None) -> bool:  # noqa: ASYNC109
        """Sleep until a wake after generation ``since`` (default: now) or ``timeout``.

        Returns True when woken, False on timeout.
        """
        if since is not None and since != self._generation:
            return True
        loop = asyncio.get_running_loop()
        if self._event is None or self._loop is not loop or self._event.is_set():
            # A fresh event per generation: waiters of the old one have all been released.
            self._event, self._loop = asyncio.Event(), loop
        event = self._event
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return True


_BY_ENGINE: weakref.WeakKeyDictionary[Engine, Notifier] = weakref.WeakKeyDictionary()


def attach(engine: AsyncEngine | Engine, notifier: Notifier) -> None:
    """Wake ``notifier`` whenever a transaction on ``engine`` committed new events."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    _BY_ENGINE[sync] = notifier


def detach(engine: AsyncEngine | Engine) -> None:
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    _BY_ENGINE.pop(sync, None)


def notifier_for(engine: Engine) -> Notifier | None:
    return _BY_ENGINE.get(engine)

"""In-process wake-up for the push stream: "new events may be in the database for you".

The notifier carries no data, only generation counters: the database stays the one
source of truth, and a socket that is woken reads its events from there. A waiter passes
the generation it saw *before* reading the database, so a wake that happens between its
read and its wait is not lost (it returns at once instead of sleeping until the poll).

Wakes are addressed: ``wake({"sav/bo"})`` wakes only the sockets of that device, so one
committed event costs one database read, not one per open socket of the instance (with
many officers connected, an unaddressed wake made every handover pay for every idle
socket). ``wake()`` without devices wakes everyone (used when it is unknown who is
concerned). A device's generation moves on every wake that concerns it, so a missed
wake is impossible whichever form was used.

Events from another gateway instance on the same PostgreSQL do not wake this notifier;
``gateway.push.sockets`` polls for those.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

# Events kept in memory per device for the local sockets (a socket that falls further
# behind reads the database, which keeps everything).
RECENT_PER_DEVICE = 256
# Published seqs remembered for the poll (a seq forgotten only costs a spurious read).
_PUBLISHED_KEPT = 65_536


class PushedEvent(Protocol):
    """What the notifier keeps of a committed event (``gateway.services.events.Event``)."""

    @property
    def seq(self) -> int: ...

    @property
    def device(self) -> str: ...


class Notifier:
    """``wake(devices)`` from anywhere; ``await wait(timeout, since=..., device=...)`` to sleep.

    ``publish(events)`` is the fast path of the units of work (``gateway.db.units``): a
    commit whose events are known in commit order hands them over, and a socket takes
    them from :meth:`recent` without a database read. Everything else (``wake``: the
    ORM sessions' commits, the cross-instance poll, an unaddressed wake) marks the
    device's memory as incomplete (:meth:`stale_generation`), and its sockets read the
    database, as before.
    """

    def __init__(self) -> None:
        self._stale_all = 0
        self._stale: dict[str, int] = {}
        self._recent: dict[str, deque[PushedEvent]] = {}
        self._dropped: dict[str, int] = {}  # highest seq that fell out of _recent
        # Seqs handed over by publish(): the cross-instance poll does not wake for them
        # (it would only make the sockets read what they already have).
        self._published: set[int] = set()
        self._published_order: deque[int] = deque()
        self._all = 0  # wakes addressed to everyone
        self._any = 0  # every wake, whoever it was for
        self._per_device: dict[str, int] = {}
        # Waiters' events per device (None: waiters for any wake). A fresh event per
        # generation: a woken event is dropped, so its waiters are all released.
        self._events: dict[str | None, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def generation(self) -> int:
        """Moves on every wake (whoever it was for)."""
        return self._any

    def generation_of(self, device: str | None) -> int:
        """Moves on every wake that concerns ``device`` (None: on every wake)."""
        if device is None:
            return self._any
        return self._all + self._per_device.get(device, 0)

    def stale_generation(self, device: str) -> int:
        """Moves whenever events may be in the database that :meth:`recent` lacks."""
        return self._stale_all + self._stale.get(device, 0)

    def recent(self, device: str, after: int) -> list[PushedEvent] | None:
        """Published events of ``device`` with seq > ``after``, ascending; None when some
        of them already fell out of memory (read the database instead)."""
        if self._dropped.get(device, 0) > after:
            return None
        return [e for e in self._recent.get(device, ()) if e.seq > after]

    def was_published(self, seq: int) -> bool:
        """Was event ``seq`` handed over by :meth:`publish` (recently)?"""
        return seq in self._published

    def publish(self, events: Sequence[PushedEvent], in_order: bool) -> None:
        """Committed events. ``in_order``: delivered in commit order (one writer), so
        sockets may take them from memory; otherwise only a wake (read the database)."""
        devices = {e.device for e in events}
        if not in_order:
            self.wake(devices)
            return
        for item in events:
            recent = self._recent.get(item.device)
            if recent is None:
                # Memory: RECENT_PER_DEVICE events per device that had one (bounded by
                # the directory), not per message.
                recent = self._recent[item.device] = deque(maxlen=RECENT_PER_DEVICE)
            if len(recent) == recent.maxlen:
                self._dropped[item.device] = recent[0].seq
            recent.append(item)
            self._published.add(item.seq)
            self._published_order.append(item.seq)
            if len(self._published_order) > _PUBLISHED_KEPT:
                self._published.discard(self._published_order.popleft())
        self._wake(devices, stale=False)

    def wake(self, devices: Iterable[str] | None = None) -> None:
        """Wake the waiters of ``devices`` (all waiters when None): new events are in the
        database. Cheap; safe to call when nobody waits, and from another thread."""
        self._wake(None if devices is None else list(devices), stale=True)

    def _wake(self, devices: Iterable[str] | None, *, stale: bool) -> None:
        loop = self._loop
        if loop is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                # asyncio primitives are not thread-safe: hop onto the waiters' loop.
                targets = None if devices is None else list(devices)
                with contextlib.suppress(RuntimeError):  # loop already closed
                    loop.call_soon_threadsafe(lambda: self._wake(targets, stale=stale))
                return
        self._any += 1
        if devices is None:
            self._all += 1
            self._stale_all += 1
            events = list(self._events.values())
            self._events.clear()
        else:
            events = []
            for device in set(devices):
                # Memory: one int per device that ever had an event (bounded by the
                # directory), not per message.
                self._per_device[device] = self._per_device.get(device, 0) + 1
                if stale:
                    self._stale[device] = self._stale.get(device, 0) + 1
                event = self._events.pop(device, None)
                if event is not None:
                    events.append(event)
            anyone = self._events.pop(None, None)
            if anyone is not None:
                events.append(anyone)
        for event in events:
            event.set()

    # The timeout is part of the contract (a socket wakes for its poll/heartbeat on it),
    # not a cancellation scope around the caller's work, so ASYNC109 does not apply.
    async def wait(
        self,
        timeout: float,  # noqa: ASYNC109
        *,
        since: int | None = None,
        device: str | None = None,
    ) -> bool:
        """Sleep until a wake for ``device`` after generation ``since`` (default: now),
        or ``timeout``. ``since`` is a value of ``generation_of(device)``.

        Returns True when woken, False on timeout.
        """
        if since is not None and since != self.generation_of(device):
            return True
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._events.clear()  # events of a previous loop cannot be awaited here
        event = self._events.get(device)
        if event is None:
            event = self._events[device] = asyncio.Event()
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

"""Per-device event log: what the push stream (GET /v1/events) sends, resumable by seq.

An event says *that* something happened to a message (``inbox.new``, ``outbox.expired``,
…), never what the message holds: ``data`` is canonical JSON of ids, codes and states
only. Events are written in the same transaction as the change they announce, so a
client never sees an event for a change that rolled back.

Ordering: a client resumes with ``?after=SEQ`` and must never miss an event. On
PostgreSQL a sequence hands out numbers in allocation order but transactions commit in
any order, so a reader could see seq 11, advance its cursor, and then miss seq 10 when
that transaction commits later. ``emit`` therefore takes the audit chain's advisory lock
(the same lock, so a transaction that audits and emits cannot deadlock on lock order):
numbers are allocated and committed in one order. SQLite has one writer (BEGIN
IMMEDIATE), which gives the same guarantee.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from gateway.db import event_store, handover_store
from gateway.db.units import Tx, in_session
from gateway.push.notifier import notifier_for
from keys.crypto.canonical import canonical_json
from keys.crypto.keypairs import DeviceId, KeyId

# Dotted, lower-case: "inbox.new", "outbox.expired". The column holds 32 characters.
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,14}\.[a-z][a-z0-9_]{0,15}$")
_EMITTED = "stafett.events_emitted"
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    device: str
    kind: str
    message_id: str | None
    created: int
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The wire form: ``{"seq","kind","message_id","created","data"}``."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "message_id": self.message_id,
            "created": self.created,
            "data": self.data,
        }


def device_of(device: str) -> DeviceId:
    """``unit/name`` or a versioned kid ``unit/name/N`` → the device.

    Events belong to the device, not to one key version, so a device that rotated its
    key still resumes its own stream.
    """
    if device.count("/") == 2:
        return KeyId.parse(device).device
    return DeviceId.parse(device)


def emit_in(
    tx: Tx,
    *,
    device: str,
    kind: str,
    message_id: str | None,
    data: dict[str, Any],
    now: int,
) -> Event:
    """Append one event for ``device`` inside a unit of work (``gateway.db.units``); the
    runner hands it to the push notifier after the commit."""
    if not _KIND_RE.fullmatch(kind):
        raise ValueError("event kind must look like 'inbox.new'")
    target = str(device_of(device))
    handover_store.lock_chain(tx.conn)  # commit order == seq order (module docstring)
    seq = handover_store.insert_event(
        tx.conn,
        {
            "unit": target.split("/", 1)[0],
            "device": target,
            "kind": kind,
            "message_id": message_id,
            "created": now,
            "data_json": canonical_json(data).decode("utf-8"),
        },
    )
    event = Event(seq=seq, device=target, kind=kind, message_id=message_id, created=now, data=data)
    tx.emitted.append(event)
    return event


async def emit(
    session: AsyncSession,
    *,
    device: str,
    kind: str,
    message_id: str | None,
    data: dict[str, Any],
    now: int,
) -> None:
    """Append one event for ``device`` inside the caller's transaction.

    The in-process notifier is woken after the transaction commits (not before: a
    socket woken early would read nothing and then wait for the next poll).
    """

    event, _ = await in_session(
        session,
        lambda tx: emit_in(tx, device=device, kind=kind, message_id=message_id, data=data, now=now),
    )
    target = event.device
    # Remember *who* is concerned: after commit only these devices' sockets are woken.
    session.sync_session.info.setdefault(_EMITTED, set()).add(target)


def events_in(tx: Tx, *, device: str, after: int, limit: int) -> list[Event]:
    """:func:`events_after` in a unit of work (the push stream's read)."""
    target = device_of(device)
    rows = handover_store.events_of_device(
        tx.conn,
        unit=target.unit,
        device=str(target),
        after=after,
        limit=max(1, min(limit, MAX_LIMIT)),
    )
    return [
        Event(
            seq=seq, device=str(target), kind=kind, message_id=mid, created=at, data=json.loads(d)
        )
        for seq, kind, mid, at, d in rows
    ]


def stream_batch(tx: Tx, *, device: str, after: int, limit: int) -> tuple[int, list[Event]]:
    """The push stream's read, in one snapshot: the directory's stored size (to check
    the socket's key against the directory as stored) and the device's next events."""
    size = handover_store.directory_size(tx.conn)
    return size, events_in(tx, device=device, after=after, limit=limit)


async def events_after(
    session: AsyncSession, *, device: str, after: int, limit: int
) -> list[Event]:
    """Events of ``device`` with seq > ``after``, ascending, at most ``limit``.

    Filtering on the device here (not in the view) is what keeps one device from ever
    receiving another device's events, even of the same unit. (:func:`events_in` in an
    ORM session's transaction.)
    """
    events, _ = await in_session(
        session, lambda tx: events_in(tx, device=device, after=after, limit=limit)
    )
    return events


async def last_seq(session: AsyncSession) -> int:
    """The highest event seq of any device (0 when none): the cross-instance poll."""
    return await event_store.last_seq(session)


async def devices_after(
    session: AsyncSession,
    *,
    after: int,
    upto: int,
    known: Callable[[int], bool] = lambda _seq: False,
) -> set[str]:
    """Devices with an event in ``after < seq <= upto`` that ``known`` does not know of
    (the events this instance already handed its sockets): whom the poll wakes."""
    pairs = await event_store.devices_after(session, after=after, upto=upto)
    return {device for seq, device in pairs if not known(seq)}


@sa_event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        # A savepoint was released: nothing is visible to other connections yet. Waking
        # now would make a socket read too early (and then sleep until the poll); the
        # root commit wakes for these devices.
        return
    devices = session.info.pop(_EMITTED, None)
    if not devices:
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    notifier = notifier_for(engine)
    if notifier is not None:
        notifier.wake(devices)


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    if session.in_nested_transaction():
        # Only a savepoint rolled back: the devices of the rest may still commit. Keeping
        # them costs at most a spurious wake; dropping them could lose one.
        return
    session.info.pop(_EMITTED, None)

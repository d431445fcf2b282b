"""Webhooks: registration per unit, and the delivery queue the job works through.

Registration (``POST /v1/webhooks``) and deletion are by the unit's **integration
device** (role ``integration`` in the verified directory, given by a security admin at
enrolment: the case-system bridge); any device of the unit may list the webhooks and
their deliveries (officers see failures). The endpoint receives
that unit's events only (``events.unit`` = the webhook's unit: one unit never sees
another's). The secret is returned once and never stored: the row holds a random salt
and the secret is derived from it, the webhook id and the gateway's identity key
(``keys.domain.webhooks.secret_from``). Threat: a copy of the database (a backup, a
read-only SQL injection, a replica) letting someone forge notifications a case system
acts on. Not defended: whoever holds the gateway's identity key and its passphrase (the
gateway host itself) can compute every secret, as the gateway must to sign; rotating
the identity key changes every secret (re-register the webhooks then).

Delivery, correct with several gateway instances on one database:

1. ``enqueue``: per webhook, under a row lock on the webhook (PostgreSQL; SQLite has
   one writer), events after its cursor become delivery rows and the cursor advances.
   ``(webhook_id, dedupe)`` is unique: an event addressed to several devices of the
   unit is one notification, and a second enqueue of the same event is a no-op.
2. ``claim``: due rows are claimed for ``CLAIM_S`` (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL): one instance posts a delivery; a crashed instance's claim runs out and
   another takes over (at-least-once; ``webhook-id`` lets the receiver drop a repeat).
3. ``settle``: delivered, or the next try from ``keys.domain.webhooks`` — four tries
   within 12 minutes, then ``failed``, listed to the unit.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.caller import Caller, require_device, require_integration_device
from gateway.db import audit_trail as audit
from gateway.db import event_store, webhook_store
from gateway.db.engine import SessionMaker
from gateway.db.models import WebhookDeliveryRow, WebhookRow
from keys.crypto.keypairs import SigningKey
from keys.domain import webhooks as policy
from keys.protocol.directory import Directory
from keys.protocol.problems import FieldInvalid, NotFound, RateLimited

MAX_PER_UNIT = 5
CLAIM_S = 60
_BATCH = 200
_URL_RE = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[\x21-\x7e]*)?$")
_LOCAL_HTTP_RE = re.compile(r"^http://127\.0\.0\.1:[0-9]{1,5}(/[\x21-\x7e]*)?$")


def check_url(url: object, *, allow_loopback_http: bool) -> str:
    """HTTPS only (a notification names message ids: not in clear text). Plain http to
    127.0.0.1 only when the deployment allows it (tests, a local relay)."""
    if (
        isinstance(url, str)
        and len(url) <= 2048
        and (_URL_RE.fullmatch(url) or (allow_loopback_http and _LOCAL_HTTP_RE.fullmatch(url)))
    ):
        return url
    raise FieldInvalid("url must be an https:// URL")


def _public(row: WebhookRow, failed: int = 0) -> dict[str, Any]:
    return {
        "webhook_id": row.id,
        "unit": row.unit,
        "url": row.url,
        "created": row.created,
        "created_by": row.created_by,
        "failed_deliveries": failed,
    }


async def register(
    sessionmaker: SessionMaker,
    caller: Caller,
    url: str,
    *,
    now: int,
    key: SigningKey,
    directory: Directory,
) -> dict[str, Any]:
    """``key``: the gateway's identity key, from which the secret is derived;
    ``directory``: the verified directory, whose role decides who may register."""
    require_integration_device(directory, caller)
    async with sessionmaker.begin() as session:
        if await webhook_store.count_for_unit(session, caller.unit) >= MAX_PER_UNIT:
            raise RateLimited(f"a unit may register at most {MAX_PER_UNIT} webhooks")
        last = await event_store.last_seq(session)
        row = WebhookRow(
            id=str(uuid.uuid4()),
            unit=caller.unit,
            url=url,
            secret=policy.new_salt(),
            created_by=str(caller.kid),
            created=now,
            after_seq=last,
        )
        webhook_store.add(session, row)
        await audit.record(
            session,
            "webhook_registered",
            now=now,
            webhook_id=row.id,
            unit=caller.unit,
            kid=str(caller.kid),
        )
    # The secret only now, once: afterwards it is never shown again.
    return {**_public(row), "secret": policy.secret_from(row.secret, row.id, key.derive)}


async def _own(session: AsyncSession, caller: Caller, webhook_id: str) -> WebhookRow:
    row = await webhook_store.get(session, webhook_id)
    # Another unit's webhook is answered as unknown: its existence is not disclosed.
    if row is None or row.unit != caller.unit:
        raise NotFound("no such webhook")
    return row


async def list_for(sessionmaker: SessionMaker, caller: Caller) -> list[dict[str, Any]]:
    require_device(caller)
    async with sessionmaker.begin() as session:
        rows = await webhook_store.for_unit(session, caller.unit)
        out = []
        for row in rows:
            out.append(_public(row, await webhook_store.failed_count(session, row.id)))
    return out


async def delete(
    sessionmaker: SessionMaker,
    caller: Caller,
    webhook_id: str,
    *,
    now: int,
    directory: Directory,
) -> None:
    require_integration_device(directory, caller)
    async with sessionmaker.begin() as session:
        row = await _own(session, caller, webhook_id)
        await webhook_store.remove(session, row)
        await audit.record(
            session,
            "webhook_deleted",
            now=now,
            webhook_id=row.id,
            unit=caller.unit,
            kid=str(caller.kid),
        )


async def deliveries(
    sessionmaker: SessionMaker, caller: Caller, webhook_id: str, state: str | None
) -> list[dict[str, Any]]:
    require_device(caller)
    if state not in (None, "pending", "delivered", "failed"):
        raise FieldInvalid("state must be pending, delivered or failed")
    async with sessionmaker.begin() as session:
        await _own(session, caller, webhook_id)
        rows = await webhook_store.deliveries(session, webhook_id, state, limit=1000)
    return [
        {
            "event_seq": r.event_seq,
            "state": r.state,
            "attempts": r.attempts,
            "next_at": r.next_at if r.state == "pending" else None,
            "last_status": r.last_status,
            "last_error": r.last_error,
            "done_at": r.done_at,
        }
        for r in rows
    ]


# --- the delivery queue ---------------------------------------------------------------
async def enqueue(sessionmaker: SessionMaker, *, now: int) -> int:
    """Turn new events into delivery rows for every webhook of their unit."""
    added = 0
    async with sessionmaker.begin() as session:
        ids = await webhook_store.all_ids(session)
    for webhook_id in ids:
        async with sessionmaker.begin() as session:
            hook = await webhook_store.get_locked(session, webhook_id)
            if hook is None:
                continue
            events = await event_store.for_unit(
                session, unit=hook.unit, after=hook.after_seq, limit=_BATCH
            )
            seen: set[str] = set()
            for event in events:
                dedupe = f"{event.kind}:{event.message_id or '#' + str(event.seq)}"
                if dedupe in seen:
                    continue
                seen.add(dedupe)
                if not await webhook_store.delivery_exists(session, hook.id, dedupe):
                    webhook_store.add(
                        session,
                        WebhookDeliveryRow(
                            webhook_id=hook.id,
                            event_seq=event.seq,
                            dedupe=dedupe,
                            state="pending",
                            attempts=0,
                            next_at=now,
                        ),
                    )
                    added += 1
            if events:
                hook.after_seq = events[-1].seq
    return added


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    attempts: int
    url: str
    secret: str
    message_id: str  # the Standard Webhooks id: the same on every try of this delivery
    payload: dict[str, Any]


async def claim(
    sessionmaker: SessionMaker, *, now: int, key: SigningKey, limit: int = 50
) -> list[Claim]:
    """Due deliveries, claimed for ``CLAIM_S`` so no other instance posts them too."""
    async with sessionmaker.begin() as session:
        rows = await webhook_store.due_deliveries(session, now=now, limit=limit)
        claims = []
        for delivery, hook, event in rows:
            delivery.claimed_until = now + CLAIM_S
            claims.append(
                Claim(
                    delivery_id=delivery.id,
                    attempts=delivery.attempts,
                    url=hook.url,
                    secret=policy.secret_from(hook.secret, hook.id, key.derive),
                    message_id=f"stafett-{hook.id[:8]}-{event.seq}",
                    payload=policy.notification(
                        seq=event.seq,
                        unit=event.unit,
                        kind=event.kind,
                        message_id=event.message_id,
                        created=event.created,
                        data=json.loads(event.data_json),
                    ),
                )
            )
    return claims


async def settle(
    sessionmaker: SessionMaker, item: Claim, *, status: int | None, error: str | None, now: int
) -> str:
    """Record one try's outcome; returns the delivery's new state."""
    attempts = item.attempts + 1
    ok = status is not None and 200 <= status < 300
    next_at = None if ok else policy.next_attempt_at(attempts, now)
    state = "delivered" if ok else ("pending" if next_at is not None else "failed")
    values: dict[str, Any] = {
        "attempts": attempts,
        "state": state,
        "last_status": status,
        "last_error": error,
        "claimed_until": None,
    }
    if next_at is not None:
        values["next_at"] = next_at
    if state != "pending":
        values["done_at"] = now
    try:
        async with sessionmaker.begin() as session:
            await webhook_store.update_delivery(session, item.delivery_id, values)
    except IntegrityError:  # the webhook was deleted meanwhile (cascade): nothing to keep
        return "deleted"
    return state

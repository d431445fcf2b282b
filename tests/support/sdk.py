"""Helpers for the SDK's end-to-end tests: keystores from the launcher's keys, SDK
clients, consent fields, and direct database looks.

The database is read directly only to check what the gateway promises about itself
(content gone after a handover) or to play an attacker with write access (audit rows).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

from sqlalchemy import CursorResult, text

from clients.admin import StafettAdminClient
from clients.sdk import StafettClient
from clients.sdk.results import PushEvent
from gateway.appkeys import SESSIONMAKER
from keys.crypto.keypairs import DeviceKeyPair
from keys.crypto.keystore import Keystore
from tests.support import factories
from tests.support.factories import DAY, EVIDENCE, OTHER_SUBJECT, SUBJECT, device, unit_name
from tests.support.gateway import RunningGateway, blob_files, start_gateway_as

__all__ = [
    "BODY",
    "DAY",
    "EVIDENCE",
    "OTHER_SUBJECT",
    "SUBJECT",
    "blob_files",
    "start_gateway_as",
]

ANNA, BERTIL, BO = "so-nordost/anna/1", "so-nordost/bertil/1", "sav/bo/1"


def device_keystore(gw: RunningGateway, kid: str, pair: DeviceKeyPair | None = None) -> Keystore:
    """A device's keystore as provisioning leaves it: its keys and the pinned root admin."""
    return factories.device_keystore(pair or gw.devices[kid], gw.admin_key.verify_key)


def admin_keystore(gw: RunningGateway) -> Keystore:
    return factories.admin_keystore(gw.admin_key)


def client(gw: RunningGateway, kid: str, **kw: Any) -> StafettClient:
    keystore = kw.pop("keystore", None) or device_keystore(gw, kid)
    kw.setdefault("retry_backoff_s", 0)
    return StafettClient(str(gw.url), keystore, **kw)


def admin(gw: RunningGateway, **kw: Any) -> StafettAdminClient:
    return StafettAdminClient(str(gw.url), admin_keystore(gw), **kw)


async def enrol_unit(gw: RunningGateway, unit: str, kind: str, *names: str) -> dict[str, Any]:
    """Create a unit and enrol devices through the admin SDK; returns kid → key pair."""
    pairs = {f"{unit}/{n}/1": device(f"{unit}/{n}/1") for n in names}
    entries = [
        gw.builder.entry("create_unit", {"unit": unit, "kind": kind, "name": unit_name(unit)})
    ]
    entries += [gw.builder.enrol(pair) for pair in pairs.values()]
    async with admin(gw) as sdk:
        await sdk.post_directory_entries([e.to_json() for e in entries])
    gw.devices.update(pairs)
    return pairs


def consent_fields(
    recorder: str,
    pairs: list[tuple[str, str]],
    *,
    categories: tuple[str, ...] = ("case_transfer",),
    purposes: tuple[str, ...] = ("transfer_to_district",),
    subject: str = SUBJECT,
    **changes: Any,
) -> dict[str, Any]:
    """A specific, written consent recorded by ``recorder`` (a kid) for ``pairs``, as
    the SDK takes it (the SDK adds the id, the recorder and the signature)."""
    now = int(time.time())
    draft = factories.consent_draft(
        now=now,
        consent_id="",
        recorder=recorder,
        between=pairs,
        categories=categories,
        purposes=purposes,
        subject=subject,
        fields={"valid_from": now - 60, "obtained_at": now - 120},
    )
    fields = {k: v for k, v in draft.items() if k not in factories.RECORDER_FIELDS}
    fields.update(changes)
    return fields


async def sql(gw: RunningGateway, statement: str, **params: Any) -> list[Any]:
    """Run one statement in its own transaction; rows for a SELECT."""
    async with gw.app[SESSIONMAKER].begin() as session:
        # A text() statement runs on a cursor: its result is a CursorResult.
        result = cast("CursorResult[Any]", await session.execute(text(statement), params))
        return list(result.all()) if result.returns_rows else []


# --- messages -------------------------------------------------------------------------
BODY = b"Hotbildsbedomning och ansokan, overlamnas enligt samtycke.\n" * 2000  # ~120 KB


async def record_consent(anna: StafettClient) -> str:
    """so-nordost → sav, case transfer to SAV, recorded by anna."""
    return await anna.record_consent(
        consent_fields(ANNA, [("so-nordost", "sav")], purposes=("transfer_to_sav",))
    )


def message_args(consent_id: str, **changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "recipient_unit": "sav",
        "consent_id": consent_id,
        "subject_ref": SUBJECT,
        "category": "case_transfer",
        "purpose": "transfer_to_sav",
        "body": BODY,
        "expires_in_s": 3600,
    }
    args.update(changes)
    return args


async def next_event(events: AsyncIterator[PushEvent], kind: str) -> PushEvent:
    """The next event of ``kind`` (others are skipped), within 10 s."""
    async with asyncio.timeout(10):
        async for event in events:
            if event.kind == kind:
                return event
    raise AssertionError(f"stream ended before {kind}")


async def content_rows(gw: RunningGateway, message_id: str) -> dict[str, Any]:
    """What the gateway still holds of a message's content."""
    (blob_key,) = (await sql(gw, "SELECT blob_key FROM messages WHERE id = :m", m=message_id))[0]
    recipients = await sql(
        gw, "SELECT kid FROM message_recipients WHERE message_id = :m", m=message_id
    )
    return {"blob_key": blob_key, "recipients": recipients, "files": blob_files(gw)}

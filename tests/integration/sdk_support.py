"""Helpers for the SDK's end-to-end tests: keystores from the harness's keys, SDK
clients, consent drafts, a second (forked) gateway and direct database looks.

The database is read directly only to check what the gateway promises about itself
(content gone after a handover) or to play an attacker with write access (audit rows).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from gateway_harness import ROOT_ADMIN, DirectoryBuilder, RunningGateway, make_settings
from sqlalchemy import text
from yarl import URL

from clients.admin import StafettAdminClient
from clients.sdk import StafettClient
from clients.sdk.results import PushEvent
from gateway.app import create_app
from gateway.appkeys import SESSIONMAKER
from gateway.identity import init_identity
from gateway.migrations import migrate
from keys.crypto.keypairs import DeviceKeyPair, KeyId, SigningKey
from keys.crypto.keystore import Keystore

DAY = 86_400
SUBJECT = "ab" * 32
OTHER_SUBJECT = "cd" * 32
EVIDENCE = "ef" * 32
ANNA, BERTIL, BO = "so-nordost/anna/1", "so-nordost/bertil/1", "sav/bo/1"


def device_keystore(gw: RunningGateway, kid: str, pair: DeviceKeyPair | None = None) -> Keystore:
    """A device's keystore as provisioning leaves it: its keys and the pinned root admin."""
    pair = pair or gw.devices[kid]
    return Keystore(
        owner=str(pair.kid.device),
        keypairs={pair.kid.version: pair},
        pinned_admins={str(ROOT_ADMIN): gw.admin_key.verify_key},
    )


def admin_keystore(gw: RunningGateway) -> Keystore:
    return Keystore(
        owner=str(ROOT_ADMIN),
        admin_key=gw.admin_key,
        pinned_admins={str(ROOT_ADMIN): gw.admin_key.verify_key},
    )


def client(gw: RunningGateway, kid: str, **kw: Any) -> StafettClient:
    keystore = kw.pop("keystore", None) or device_keystore(gw, kid)
    kw.setdefault("retry_backoff_s", 0)
    return StafettClient(str(gw.url), keystore, **kw)


def admin(gw: RunningGateway, **kw: Any) -> StafettAdminClient:
    return StafettAdminClient(str(gw.url), admin_keystore(gw), **kw)


async def enrol_unit(gw: RunningGateway, unit: str, kind: str, *names: str) -> dict[str, Any]:
    """Create a unit and enrol devices through the admin SDK; returns kid → key pair."""
    pairs = {f"{unit}/{n}/1": DeviceKeyPair.generate(KeyId.parse(f"{unit}/{n}/1")) for n in names}
    entries = [gw.builder.entry("create_unit", {"unit": unit, "kind": kind, "name": unit.upper()})]
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
    """A specific, written consent recorded by ``recorder`` (a kid) for ``pairs``."""
    now = int(time.time())
    kid = KeyId.parse(recorder)
    fields: dict[str, Any] = {
        "subject_ref": subject,
        "pairs": [{"from": a, "to": b} for a, b in pairs],
        "categories": list(categories),
        "purposes": list(purposes),
        "valid_from": now - 60,
        "valid_until": now + 90 * DAY,
        "form": "written",
        "evidence_hash": EVIDENCE,
        "free_text_hash": None,
        "obtained_by": str(kid.device),
        "obtained_at": now - 120,
        "minor": False,
        "guardians": [],
        "covers_processing": True,
    }
    fields.update(changes)
    return fields


async def sql(gw: RunningGateway, statement: str, **params: Any) -> list[Any]:
    """Run one statement in its own transaction; rows for a SELECT."""
    async with gw.app[SESSIONMAKER].begin() as session:
        result = await session.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


def blob_files(gw: RunningGateway) -> list[Path]:
    root = gw.settings.blobs
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def start_gateway_as(data_dir: Path, store_url: str, admin_key: SigningKey) -> RunningGateway:
    """A second gateway whose log is signed by the *same* root admin, with its own
    history (another start time, other units): what a forking gateway would show.

    Mirrors gateway_harness.start_gateway, which always generates a fresh admin key.
    """
    settings = make_settings(data_dir, store_url)
    await migrate(settings.db_url)
    identity = init_identity(settings, {str(ROOT_ADMIN): admin_key.verify_key})
    app = create_app(settings, identity)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    builder = DirectoryBuilder(admin_key)
    builder.clock -= 7 * DAY  # another history from entry 0 on
    entries = [
        builder.entry(
            "add_admin", {"admin": str(ROOT_ADMIN), "verify_key": admin_key.verify_key.b64()}
        ),
        builder.entry("create_unit", {"unit": "so-nordost", "kind": "district", "name": "X"}),
    ]
    gw = RunningGateway(
        url=URL(f"http://127.0.0.1:{runner.addresses[0][1]}"),
        app=app,
        settings=settings,
        identity=identity,
        admin_key=admin_key,
        devices={},
        builder=builder,
        http=aiohttp.ClientSession(),
        runner=runner,
    )
    await gw.append(*entries)
    return gw


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

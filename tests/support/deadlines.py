"""Builders for the deadline tests: a socialjour unit, a designated contact device in
so-nordost, a consent for flow 5 (socialjour → district after hours), and readers."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from gateway.appkeys import SESSIONMAKER
from gateway.db.models import AuditEntryRow, EventRow
from keys.crypto.keypairs import DeviceKeyPair, KeyId
from keys.protocol.envelope import EnvelopeHeader
from tests.support.factories import DAY
from tests.support.gateway import RunningGateway
from tests.support.messages import ANNA, now, record_consent, send_new

SARA = "socialjour/sara/1"  # socialjour officer: the sender of flow 5
MOTTAGNING = "so-nordost/mottagning/1"  # so-nordost's designated contact device
FLOW5 = {"category": "after_hours_matter", "purpose": "after_hours_handover"}


async def add_flow5_units(gw: RunningGateway) -> None:
    """socialjour (kind socialjour) with sara; a contact device in so-nordost."""
    sara = DeviceKeyPair.generate(KeyId.parse(SARA))
    contact = DeviceKeyPair.generate(KeyId.parse(MOTTAGNING))
    unit = gw.builder.entry(
        "create_unit", {"unit": "socialjour", "kind": "socialjour", "name": "Socialjouren"}
    )
    contact_entry = gw.builder.entry(
        "enrol_device",
        {
            "device": str(contact.kid.device),
            "version": 1,
            "verify_key": contact.signing_key.verify_key.b64(),
            "encryption_key": contact.encryption_key.public_key.b64(),
            "role": "officer",
            "contact": True,  # designated to hear of overdue handovers
        },
    )
    enrol_sara = gw.builder.enrol(sara)  # entries chain in the order they were signed
    await gw.append(unit, contact_entry, enrol_sara)
    gw.devices[SARA] = sara
    gw.devices[MOTTAGNING] = contact


def flow5_consent_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "pairs": [{"from": "socialjour", "to": "so-nordost"}],
        "categories": [FLOW5["category"]],
        "purposes": [FLOW5["purpose"]],
        "obtained_by": "socialjour/sara",
        "recorded_by": SARA,
        "valid_until": now() + 90 * DAY,
    }
    fields.update(changes)
    return fields


async def record_flow5_consent(gw: RunningGateway, **changes: Any) -> str:
    record = await record_consent(gw, **flow5_consent_fields(**changes))
    return str(record["consent_id"])


async def send_flow5(gw: RunningGateway, consent_id: str, **changes: Any) -> EnvelopeHeader:
    header, _ = await send_new(
        gw, consent_id, sender=SARA, recipients=(ANNA,), **{**FLOW5, **changes}
    )
    return header


async def device_events(gw: RunningGateway, device: str, kind: str) -> list[EventRow]:
    async with gw.app[SESSIONMAKER]() as session:
        rows = await session.scalars(
            select(EventRow)
            .where(EventRow.device == device, EventRow.kind == kind)
            .order_by(EventRow.seq)
        )
        return list(rows)


async def audit_data(gw: RunningGateway, event: str) -> list[dict[str, Any]]:
    async with gw.app[SESSIONMAKER]() as session:
        rows = await session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.event == event).order_by(AuditEntryRow.seq)
        )
        return [json.loads(r.data_json) for r in rows]

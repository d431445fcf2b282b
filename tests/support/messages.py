"""Builders for the consent and message tests: signed consents, real sealed envelopes.

Everything goes through the real app (signed HTTP requests) and the real keys/ code;
the database is only read to assert what was (not) stored.
"""

from __future__ import annotations

import io
import struct
import time
import uuid
from typing import Any

from sqlalchemy import func, select

from gateway.appkeys import SESSIONMAKER
from gateway.db import consent_store
from gateway.db.models import (
    AuditEntryRow,
    ConsentRow,
    EventRow,
    MessageRecipient,
    MessageRow,
)
from keys.crypto.canonical import canonical_json, hash32, parse_canonical
from keys.crypto.keypairs import DeviceKeyPair, DevicePublicKeys, KeyId
from keys.protocol.envelope import EnvelopeHeader, seal
from keys.protocol.receipt import make_receipt
from tests.support import factories
from tests.support.factories import DAY, SUBJECT
from tests.support.gateway import Reply, RunningGateway

ANNA = "so-nordost/anna/1"
BERTIL = "so-nordost/bertil/1"
BO = "sav/bo/1"
LAS = "las-storgoteborg"
LISA = "las-storgoteborg/lisa/1"
ENVELOPE = "application/vnd.stafett.envelope"


def now() -> int:
    return int(time.time())


def new_id() -> str:
    return str(uuid.uuid4())


def consent_draft(**changes: Any) -> dict[str, Any]:
    """A valid written consent: so-nordost and SAV may exchange a case transfer."""
    return factories.consent_draft(
        now=now(),
        consent_id=new_id(),
        recorder=ANNA,
        between=[("so-nordost", "sav"), ("sav", "so-nordost")],
        categories=["case_transfer", "threat_assessment"],
        purposes=["transfer_to_sav"],
        fields=changes,
    )


def signed_consent(gw: RunningGateway, **changes: Any) -> dict[str, Any]:
    draft = consent_draft(**changes)
    return factories.signed_consent(draft, gw.devices[draft["recorded_by"]])


async def record_consent(gw: RunningGateway, **changes: Any) -> dict[str, Any]:
    """Record a consent through the API (as its recording device); returns the record."""
    record = signed_consent(gw, **changes)
    reply = await gw.client(record["recorded_by"]).post("/v1/consents", record)
    assert reply.status == 201, reply.body
    return record


async def store_consent_as_of(
    gw: RunningGateway, created_at: int, units: list[str], **changes: Any
) -> str:
    """Store a signed consent straight into the database, as it was recorded back at
    ``created_at`` (the API checks a consent against the real clock, so a consent that
    has run out, or one recorded on a past Friday, cannot go through it); ``units``
    are the units the consent names. Returns the consent id."""
    record = signed_consent(gw, **changes)
    async with gw.app[SESSIONMAKER].begin() as session:
        await consent_store.insert(
            session,
            ConsentRow(
                id=record["consent_id"],
                version=1,
                subject_ref=record["subject_ref"],
                recorded_by=record["recorded_by"],
                record_json=canonical_json(record).decode(),
                valid_from=record["valid_from"],
                valid_until=record["valid_until"],
                withdrawn_at=None,
                withdrawal_reason=None,
                created_at=created_at,
            ),
            units,
        )
    return str(record["consent_id"])


async def add_las_unit(gw: RunningGateway) -> DeviceKeyPair:
    """A third unit (police LAS) with one device, enrolled by the root admin."""
    lisa = DeviceKeyPair.generate(KeyId.parse(LISA))
    unit = gw.builder.entry("create_unit", {"unit": LAS, "kind": "las", "name": "LAS"})
    await gw.append(unit, gw.builder.enrol(lisa))
    gw.devices[LISA] = lisa
    return lisa


def header_for(
    gw: RunningGateway,
    *,
    consent_id: str,
    sender: str = ANNA,
    recipients: tuple[str, ...] = (BO,),
    recipient_unit: str | None = None,
    message_id: str | None = None,
    **overrides: Any,
) -> EnvelopeHeader:
    t = now()
    fields: dict[str, Any] = {
        "message_id": message_id or new_id(),
        "sender": KeyId.parse(sender),
        "recipient_unit": recipient_unit or KeyId.parse(recipients[0]).unit,
        "recipients": tuple(KeyId.parse(r) for r in recipients),
        "consent_id": consent_id,
        "subject_ref": SUBJECT,
        "category": "case_transfer",
        "purpose": "transfer_to_sav",
        "created": t,
        "expires": t + 7 * DAY,
        "checkpoint_size": gw.builder.directory.size,
        "checkpoint_head": gw.builder.directory.head.hex(),
        "in_reply_to": None,
    }
    fields.update(overrides)
    return EnvelopeHeader(**fields)


def seal_envelope(
    gw: RunningGateway,
    header: EnvelopeHeader,
    content: bytes = b"Ansokan och hotbildsbedomning (test)",
    *,
    recipient_keys: list[DevicePublicKeys] | None = None,
) -> bytes:
    keys = recipient_keys or [gw.devices[str(k)].public() for k in header.recipients]
    out = io.BytesIO()
    # v1: these tests use header.hash() as the envelope's hH, which a v2 header only has
    # once seal has added the key commitment. v2 through the gateway: every SDK-driven
    # test and tests/integration/test_sdk_envelope_v2.py.
    seal(header, io.BytesIO(content), keys, gw.devices[str(header.sender)], out, version=1)
    return out.getvalue()


async def send(gw: RunningGateway, kid: str, message_id: str, envelope: bytes) -> Reply:
    return await gw.client(kid).put(f"/v1/messages/{message_id}", envelope, content_type=ENVELOPE)


async def send_new(
    gw: RunningGateway, consent_id: str, **header_changes: Any
) -> tuple[EnvelopeHeader, bytes]:
    """Seal and send one message under ``consent_id``; asserts it was accepted."""
    header = header_for(gw, consent_id=consent_id, **header_changes)
    envelope = seal_envelope(gw, header)
    reply = await send(gw, str(header.sender), header.message_id, envelope)
    assert reply.status == 201, reply.body
    return header, envelope


def receipt_for(
    gw: RunningGateway,
    header: EnvelopeHeader,
    kid: str = BO,
    *,
    status: str = "accepted",
    reason: str | None = None,
    header_hash: bytes | None = None,
) -> dict[str, Any]:
    return make_receipt(
        message_id=header.message_id,
        header_hash=header_hash or header.hash(),
        recipient=kid,
        status=status,
        reason=reason,
        received_at=now(),
        key=gw.devices[kid].signing_key,
    )


def resign_with_header(envelope: bytes, header: dict[str, Any], sender: DeviceKeyPair) -> bytes:
    """Replace ``H`` and sign the result properly as ``sender``: the envelope is
    authentic, only its header breaks the rules (what the gateway must still refuse)."""
    (hlen,) = struct.unpack(">I", envelope[8:12])
    w_at = 12 + hlen
    (wlen,) = struct.unpack(">I", envelope[w_at : w_at + 4])
    wrapped = envelope[w_at + 4 : w_at + 4 + wlen]
    body = envelope[w_at + 4 + wlen : -64]
    new_h = canonical_json(header)
    signature = sender.signing_key.sign(
        b"stafett/v1/sig"
        + hash32(new_h, b"stafett.hdr")
        + hash32(wrapped, b"stafett.wrap")
        + hash32(body, b"stafett.body")
    )
    return (
        envelope[:8]
        + struct.pack(">I", len(new_h))
        + new_h
        + envelope[w_at : w_at + 4 + wlen]
        + body
        + signature
    )


def header_json(envelope: bytes) -> dict[str, Any]:
    (hlen,) = struct.unpack(">I", envelope[8:12])
    value = parse_canonical(envelope[12 : 12 + hlen])
    assert isinstance(value, dict)
    return value


# --- what is stored ----------------------------------------------------------------------
async def message_row(gw: RunningGateway, message_id: str) -> MessageRow:
    """The stored row of a message the test sent (it fails if there is none)."""
    async with gw.app[SESSIONMAKER]() as session:
        row = await session.get(MessageRow, message_id)
    assert row is not None, f"no message row {message_id}"
    return row


async def count_messages(gw: RunningGateway) -> int:
    async with gw.app[SESSIONMAKER]() as session:
        return int(await session.scalar(select(func.count()).select_from(MessageRow)) or 0)


async def recipient_rows(gw: RunningGateway, message_id: str) -> list[str]:
    async with gw.app[SESSIONMAKER]() as session:
        rows = await session.scalars(
            select(MessageRecipient.kid).where(MessageRecipient.message_id == message_id)
        )
        return list(rows)


async def events(gw: RunningGateway, device: str) -> list[tuple[str, str | None, str]]:
    """(kind, message_id, data_json) of a device's events, in order."""
    async with gw.app[SESSIONMAKER]() as session:
        rows = await session.scalars(
            select(EventRow).where(EventRow.device == device).order_by(EventRow.seq)
        )
        return [(r.kind, r.message_id, r.data_json) for r in rows]


async def audit_events(gw: RunningGateway) -> list[tuple[str, str]]:
    async with gw.app[SESSIONMAKER]() as session:
        rows = await session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq))
        return [(r.event, r.data_json) for r in rows]

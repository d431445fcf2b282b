"""Envelope v2 through the real gateway: the SDK seals v2, the gateway verifies it, the
recipient opens it; a v1 envelope still pending from before the upgrade is accepted and
opened too."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest

from clients.sdk import StafettClient, sealing
from keys.protocol.envelope import EnvelopeHeader, seal
from tests.support.gateway import RunningGateway
from tests.support.sdk import (
    ANNA,
    BO,
    BODY,
    SUBJECT,
    blob_files,
    client,
    message_args,
    record_consent,
)


def _stored_magic(gateway: RunningGateway) -> bytes:
    (blob,) = blob_files(gateway)
    return blob.read_bytes()[:8]


@pytest.mark.asyncio
async def test_the_sdk_seals_v2_and_the_gateway_verifies_it(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        sent = await anna.send(**message_args(consent_id))
        assert sent.status == 201
        assert _stored_magic(gateway) == b"STAFETT\x02"
        # The gateway parsed and verified the v2 header: it answers its hash.
        assert sent.answer["header_hash"] == sent.header_hash
        dest = tmp_path / "received" / "case.txt"
        dest.parent.mkdir()
        opened = await bo.fetch(sent.message_id, dest)
        assert dest.read_bytes() == BODY
        assert opened.header_hash == sent.header_hash
        assert sorted(p.name for p in dest.parent.iterdir()) == ["case.txt"]  # no temp left


async def _send_v1(anna: StafettClient, consent_id: str, tmp_path: Path) -> str:
    """What a client from before the upgrade uploads (same request, a v1 envelope)."""
    directory = await anna.directory()
    recipients = directory.encryption_keys("sav", None)
    now = anna._now()
    header = EnvelopeHeader(
        message_id=str(uuid.uuid4()),
        sender=anna.kid,
        recipient_unit="sav",
        recipients=tuple(r.kid for r in recipients),
        consent_id=consent_id,
        subject_ref=SUBJECT,
        category="case_transfer",
        purpose="transfer_to_sav",
        created=now,
        expires=now + 3600,
        checkpoint_size=directory.size,
        checkpoint_head=directory.head.hex(),
        in_reply_to=None,
    )
    path = tmp_path / "v1.stf"
    with path.open("wb") as out:
        result = seal(header, io.BytesIO(BODY), recipients, anna._pair(), out, version=1)
    sealed = sealing.SealedFile(path, result, sealing.file_digest(path))
    status, _, _ = await anna._put_envelope(header.message_id, sealed, None)
    assert status == 201
    return header.message_id


@pytest.mark.asyncio
async def test_a_pending_v1_envelope_is_still_accepted_and_opened(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        message_id = await _send_v1(anna, consent_id, tmp_path)
        assert _stored_magic(gateway) == b"STAFETT\x01"
        dest = tmp_path / "out" / "case.txt"
        dest.parent.mkdir()
        opened = await bo.fetch(message_id, dest)
        assert dest.read_bytes() == BODY
        assert opened.header_hash

"""Trust decisions the SDK takes on the recipient's and sender's side: who may open,
whose signature counts, which receipt proves a handover."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keys.errors import (
    EnvelopeNotForThisDevice,
    EnvelopeSenderUnknown,
    ReceiptMismatch,
    ReceiptSignatureInvalid,
)
from keys.protocol.problems import MessageNotFound
from tests.support.gateway import RunningGateway
from tests.support.sdk import (
    ANNA,
    BERTIL,
    BO,
    admin,
    client,
    consent_fields,
    message_args,
    record_consent,
    sql,
)


@pytest.mark.asyncio
async def test_named_officers_only_and_others_cannot_open(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    async with (
        client(gateway, BO) as bo,
        client(gateway, ANNA) as anna,
        client(gateway, BERTIL) as bertil,
    ):
        consent_id = await bo.record_consent(
            consent_fields(BO, [("sav", "so-nordost")], purposes=("transfer_to_district",))
        )
        sent = await bo.send(
            **message_args(
                consent_id,
                recipient_unit="so-nordost",
                purpose="transfer_to_district",
                devices=["anna"],
                body=b"endast anna",
            )
        )
        assert sent.recipients == (ANNA,)
        # Bertil, same unit, was not addressed: the gateway does not serve him the envelope.
        with pytest.raises((MessageNotFound, EnvelopeNotForThisDevice)):
            await bertil.fetch(sent.message_id, tmp_path / "x")
        assert not (tmp_path / "x").exists()
        opened = await anna.fetch(sent.message_id, tmp_path / "anna.txt")
        assert opened.content_length == len(b"endast anna")


@pytest.mark.asyncio
async def test_a_sender_revoked_before_fetch_is_not_trusted(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        sent = await anna.send(**message_args(consent_id))
    # Anna's laptop is lost: whatever is signed with her key can no longer be trusted.
    entry = gateway.builder.entry("revoke_device", {"device": "so-nordost/anna", "reason": "lost"})
    async with admin(gateway) as sdk_admin:
        await sdk_admin.post_directory_entries([entry.to_json()])
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    async with client(gateway, BO) as bo:
        with pytest.raises(EnvelopeSenderUnknown):
            await bo.fetch(sent.message_id, inbox / "case.txt")
    assert sorted(inbox.iterdir()) == []  # no output, no partial file


@pytest.mark.asyncio
async def test_a_receipt_altered_at_the_gateway_is_refused(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        sent = await anna.send(**message_args(consent_id))
        await bo.fetch(sent.message_id, tmp_path / "case.txt")
        await bo.ack(sent.message_id)
        assert (await anna.receipt(sent.message_id)).accepted
        # A genuine receipt for another envelope is no receipt for this one.
        with pytest.raises(ReceiptMismatch):
            await anna.receipt(sent.message_id, header_hash="00" * 32)
        rows = await sql(
            gateway, "SELECT receipt_json FROM receipts WHERE message_id = :m", m=sent.message_id
        )
        (stored,) = rows[0]
        forged = json.loads(stored)
        forged["received_at"] += 86_400  # the gateway claims a later handover
        await sql(
            gateway,
            "UPDATE receipts SET receipt_json = :r WHERE message_id = :m",
            r=json.dumps(forged),
            m=sent.message_id,
        )
        with pytest.raises(ReceiptSignatureInvalid):
            await anna.receipt(sent.message_id)

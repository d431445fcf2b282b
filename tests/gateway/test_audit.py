"""The audit chain: every decision appended, hash-chained, checkpointed, verifiable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import update

from gateway.appkeys import SESSIONMAKER
from gateway.db import audit_trail as audit
from gateway.db.models import AuditEntryRow
from keys.crypto.keypairs import SigningKey
from keys.errors import AuditEntryAltered
from keys.protocol.auditlog import verify_audit_chain
from tests.support.gateway import assert_problem

ENTRIES = "/v1/directory/entries"


async def _chain(gateway) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    entries = (await gateway.admin.get("/v1/audit/entries")).json()["entries"]
    reply = await gateway.admin.get("/v1/audit/checkpoint")
    assert reply.status == 200, reply.body
    return entries, reply.json()


@pytest.mark.asyncio
async def test_decisions_and_refusals_are_chained_and_checkpointed(gateway) -> None:
    await gateway.append(
        gateway.builder.entry("revoke_device", {"device": "so-nordost/bertil", "reason": "lost"})
    )
    bertil = gateway.client("so-nordost/bertil/1")
    assert_problem(await bertil.get(ENTRIES), 403, "device_revoked")
    anna = gateway.client("so-nordost/anna/1")
    assert_problem(await anna.post(ENTRIES, {"entries": []}), 403, "admin_required")
    # Unauthenticated refusals are not audited (anyone could flood the trail).
    forged = gateway.client("so-nordost/anna/1", SigningKey.generate())
    assert_problem(await forged.get(ENTRIES), 401, "signature_invalid")

    entries, checkpoint = await _chain(gateway)
    events = [(e["event"], e["data"].get("code")) for e in entries]
    assert events == [
        ("directory_appended", None),  # the fixture's seed
        ("directory_appended", None),  # the revocation
        ("request_refused", "device_revoked"),
        ("request_refused", "admin_required"),
    ]
    refused = entries[3]["data"]
    assert refused == {
        "kid": "so-nordost/anna/1",
        "code": "admin_required",
        "method": "POST",
        "route": "/v1/directory/entries",
    }
    assert entries[1]["data"]["types"] == ["revoke_device"]
    head = verify_audit_chain(
        entries, checkpoints=[checkpoint], gateway_key=gateway.identity.verify_key
    )
    assert head.size == checkpoint["size"] == 4


@pytest.mark.asyncio
async def test_edited_entry_is_detected(gateway) -> None:
    entries, checkpoint = await _chain(gateway)
    async with gateway.app[SESSIONMAKER].begin() as session:
        await session.execute(
            update(AuditEntryRow).where(AuditEntryRow.seq == 0).values(data_json='{"count":99}')
        )
    entries = (await gateway.admin.get("/v1/audit/entries")).json()["entries"]
    with pytest.raises(AuditEntryAltered):
        verify_audit_chain(
            entries, checkpoints=[checkpoint], gateway_key=gateway.identity.verify_key
        )


@pytest.mark.asyncio
async def test_concurrent_appends_keep_one_chain(gateway) -> None:
    sessionmaker = gateway.app[SESSIONMAKER]

    async def one(i: int) -> None:
        async with sessionmaker.begin() as session:
            await audit.record(session, "test_event", now=1000 + i, n=i)

    await asyncio.gather(*(one(i) for i in range(20)))
    entries, checkpoint = await _chain(gateway)
    assert len(entries) == 21
    verify_audit_chain(entries, checkpoints=[checkpoint], gateway_key=gateway.identity.verify_key)


@pytest.mark.asyncio
async def test_checkpoint_signing_is_idempotent(gateway) -> None:
    sessionmaker, identity = gateway.app[SESSIONMAKER], gateway.identity
    async with sessionmaker.begin() as session:
        first = await audit.sign_checkpoint(session, identity.kid, identity.signing_key, now=5)
    async with sessionmaker.begin() as session:
        again = await audit.sign_checkpoint(session, identity.kid, identity.signing_key, now=6)
    assert first is not None
    assert again is not None
    assert (again.size, again.created) == (first.size, 5)


@pytest.mark.asyncio
async def test_audit_refuses_content_shaped_fields(gateway) -> None:
    from keys.errors import AuditDataForbidden

    async with gateway.app[SESSIONMAKER].begin() as session:
        with pytest.raises(AuditDataForbidden):
            await audit.record(session, "test_event", now=1, content="case notes")

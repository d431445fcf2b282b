"""The audit trail fetched through the admin SDK; any tampering in the database is found."""

from __future__ import annotations

import pytest

from keys.crypto.keypairs import SigningKey
from keys.errors import (
    AuditChainBroken,
    AuditCheckpointMismatch,
    AuditCheckpointSignatureInvalid,
    AuditEntryAltered,
)
from tests.support.gateway import RunningGateway, rewrite_audit_entry_1
from tests.support.sdk import admin, sql


async def _grow_trail(gw: RunningGateway, units: int = 4) -> None:
    async with admin(gw) as sdk:
        for _ in range(units):
            n = len(gw.builder.directory.units)
            entry = gw.builder.entry(
                "create_unit", {"unit": f"las-test{n}", "kind": "las", "name": f"LAS {n}"}
            )
            await sdk.post_directory_entries([entry.to_json()])


async def _verify(gw: RunningGateway) -> int:
    async with admin(gw) as sdk:
        return (await sdk.verify_audit(gw.identity.verify_key)).size


@pytest.mark.asyncio
async def test_an_untouched_trail_verifies(gateway: RunningGateway) -> None:
    await _grow_trail(gateway)
    size = await _verify(gateway)
    assert size >= 5
    async with admin(gateway) as sdk:
        entries = await sdk.audit_entries()
        assert [e["seq"] for e in entries] == list(range(len(entries)))
        with pytest.raises(AuditCheckpointSignatureInvalid):
            await sdk.verify_audit(SigningKey.generate().verify_key)


@pytest.mark.asyncio
async def test_an_edited_row_is_found(gateway: RunningGateway) -> None:
    await _grow_trail(gateway)
    await sql(gateway, "UPDATE audit_entries SET data_json = :d WHERE seq = 2", d='{"size":99}')
    with pytest.raises(AuditEntryAltered):
        await _verify(gateway)


@pytest.mark.asyncio
async def test_a_dropped_row_is_found(gateway: RunningGateway) -> None:
    await _grow_trail(gateway)
    await sql(gateway, "DELETE FROM audit_entries WHERE seq = 2")
    with pytest.raises(AuditChainBroken):
        await _verify(gateway)


@pytest.mark.asyncio
async def test_reordered_rows_are_found(gateway: RunningGateway) -> None:
    await _grow_trail(gateway)
    # Swap rows 1 and 2 (through a free seq: the column is the primary key).
    await sql(gateway, "UPDATE audit_entries SET seq = 100000 WHERE seq = 1")
    await sql(gateway, "UPDATE audit_entries SET seq = 1 WHERE seq = 2")
    await sql(gateway, "UPDATE audit_entries SET seq = 2 WHERE seq = 100000")
    # seq is hashed, so a moved row no longer matches its hash; were it re-hashed, its
    # prev_hash would break the chain instead. Either way the move is found.
    with pytest.raises((AuditEntryAltered, AuditChainBroken)):
        await _verify(gateway)


@pytest.mark.asyncio
async def test_a_rewritten_history_is_caught_by_the_signed_checkpoint(
    gateway: RunningGateway,
) -> None:
    await _grow_trail(gateway)
    assert await _verify(gateway) > 3  # the gateway signed a checkpoint of this head
    await rewrite_audit_entry_1(gateway)
    with pytest.raises(AuditCheckpointMismatch):
        await _verify(gateway)


@pytest.mark.asyncio
async def test_a_rewrite_hidden_under_a_newer_checkpoint_needs_the_saved_one(
    gateway: RunningGateway,
) -> None:
    await _grow_trail(gateway, units=3)
    async with admin(gateway) as sdk:
        saved = await sdk.audit_checkpoint()  # the auditor keeps what it verified
        await sdk.verify_audit(gateway.identity.verify_key, known_checkpoints=[saved])
    await rewrite_audit_entry_1(gateway)
    await _grow_trail(gateway, units=1)  # a new entry: the gateway signs the forged head
    async with admin(gateway) as sdk:
        await sdk.verify_audit(gateway.identity.verify_key)  # latest checkpoint alone: fooled
        with pytest.raises(AuditCheckpointMismatch):
            await sdk.verify_audit(gateway.identity.verify_key, known_checkpoints=[saved])

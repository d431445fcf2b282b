"""Directory sync through the SDK against a real gateway (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.errors import GatewayUnavailable
from keys.crypto.keypairs import DeviceKeyPair, KeyId, SigningKey
from keys.errors import DirectoryEntryInvalid, DirectoryForked, DirectorySignatureInvalid
from tests.support.gateway import RunningGateway, start_gateway, stop_gateway
from tests.support.sdk import ANNA, BERTIL, BO, admin, client, device_keystore, start_gateway_as


@pytest.mark.asyncio
async def test_sync_verifies_the_log_and_remembers_the_head(gateway: RunningGateway) -> None:
    keystore = device_keystore(gateway, ANNA)
    async with client(gateway, ANNA, keystore=keystore) as sdk:
        result = await sdk.sync_directory()
        assert result.fetched == result.directory.size == 6  # admin, 2 units, 3 devices
        assert result.changes == []
        assert set(result.directory.devices) == {"so-nordost/anna", "so-nordost/bertil", "sav/bo"}
        assert keystore.known_checkpoint == (6, result.directory.head.hex())
        # Incremental: nothing new, nothing fetched.
        again = await sdk.sync_directory()
        assert again.fetched == 0
        assert again.directory is result.directory


@pytest.mark.asyncio
async def test_key_changes_of_known_devices_are_reported(gateway: RunningGateway) -> None:
    async with client(gateway, ANNA) as sdk:
        before = (await sdk.sync_directory()).directory
        old_bertil = before.devices["so-nordost/bertil"].versions[1].verify_key.fingerprint()
        rotated = DeviceKeyPair.generate(KeyId.parse("so-nordost/bertil/2"))
        entries = [
            gateway.builder.rotate(rotated, min_encryption_version=2),
            gateway.builder.entry("revoke_device", {"device": "sav/bo", "reason": "lost"}),
        ]
        # A device enrolled and rotated in the same sync was never known: no warning.
        async with admin(gateway) as sdk_admin:
            await sdk_admin.post_directory_entries([e.to_json() for e in entries])
        result = await sdk.sync_directory()
    assert result.fetched == 2
    rotation, revocation = result.changes
    assert rotation.device == "so-nordost/bertil"
    assert rotation.kind == "rotated"
    assert rotation.old_fingerprint == old_bertil
    assert rotation.new_fingerprint == rotated.signing_key.verify_key.fingerprint()
    assert rotation.new_encryption_fingerprint == rotated.encryption_key.public_key.fingerprint()
    assert (rotation.old_version, rotation.new_version) == (1, 2)
    assert rotation.seq == 6
    assert rotation.signer == "admin/root/1"
    assert revocation.device == "sav/bo"
    assert revocation.kind == "revoked"
    assert revocation.new_fingerprint is None
    assert revocation.seq == 7


@pytest.mark.asyncio
async def test_a_forked_gateway_is_refused(
    gateway: RunningGateway, second_store_url: str, tmp_path: Path
) -> None:
    keystore = device_keystore(gateway, ANNA)
    async with client(gateway, ANNA, keystore=keystore) as sdk:
        await sdk.sync_directory()
    seen = keystore.known_checkpoint
    assert seen is not None
    # Same root admin, different history: every entry verifies, the history differs.
    forked = await start_gateway_as(tmp_path / "fork", second_store_url, gateway.admin_key)
    try:
        forked.devices[ANNA] = gateway.devices[ANNA]
        entry = forked.builder.enrol(gateway.devices[ANNA])
        await forked.append(entry)
        async with client(forked, ANNA, keystore=keystore) as sdk:
            with pytest.raises(DirectoryForked):
                await sdk.sync_directory()
        # The refusal kept the head this device trusts.
        assert keystore.known_checkpoint == seen
    finally:
        await stop_gateway(forked)


@pytest.mark.asyncio
async def test_a_rolled_back_log_is_a_fork(gateway: RunningGateway) -> None:
    keystore = device_keystore(gateway, ANNA)
    keystore.known_checkpoint = (50, "11" * 32)  # this device once saw 50 entries
    async with client(gateway, ANNA, keystore=keystore) as sdk:
        with pytest.raises(DirectoryForked):
            await sdk.sync_directory()


@pytest.mark.asyncio
async def test_a_directory_under_another_root_admin_is_refused(
    gateway: RunningGateway, second_store_url: str, tmp_path: Path
) -> None:
    other = await start_gateway(tmp_path / "other", second_store_url)
    try:
        # The other gateway knows this device (enrolled by its own admin), but the
        # device pins the root admin of its own city, not the other gateway's.
        keystore = device_keystore(gateway, ANNA, other.devices[ANNA])
        async with client(other, ANNA, keystore=keystore) as sdk:
            # Same admin kid, another key: entry 0 is not the root this device pinned.
            with pytest.raises(DirectoryEntryInvalid, match="pinned root admin"):
                await sdk.sync_directory()
    finally:
        await stop_gateway(other)


@pytest.mark.asyncio
async def test_checkpoint_signature_is_checked_with_the_pinned_gateway_key(
    gateway: RunningGateway,
) -> None:
    async with client(gateway, BERTIL, gateway_key=gateway.identity.verify_key) as sdk:
        await sdk.sync_directory()
    wrong = SigningKey.generate().verify_key
    async with client(gateway, BO, gateway_key=wrong) as sdk:
        with pytest.raises(DirectorySignatureInvalid):
            await sdk.sync_directory()


@pytest.mark.asyncio
async def test_an_unreachable_gateway_is_reported_as_such(gateway: RunningGateway) -> None:
    keystore = device_keystore(gateway, ANNA)
    from clients.sdk import StafettClient

    async with StafettClient("http://127.0.0.1:9", keystore) as sdk:
        with pytest.raises(GatewayUnavailable, match="could not be reached"):
            await sdk.sync_directory()


@pytest.mark.asyncio
async def test_a_new_process_still_reports_changes_since_the_saved_head(
    gateway: RunningGateway,
) -> None:
    keystore = device_keystore(gateway, ANNA)
    async with client(gateway, ANNA, keystore=keystore) as sdk:
        await sdk.sync_directory()  # the CLI saves keystore.known_checkpoint afterwards
    entry = gateway.builder.entry(
        "revoke_device", {"device": "so-nordost/bertil", "reason": "lost"}
    )
    async with admin(gateway) as sdk_admin:
        await sdk_admin.post_directory_entries([entry.to_json()])
    # A new process rebuilds the directory from entry 0 and still warns about entry 6.
    async with client(gateway, ANNA, keystore=keystore) as sdk:
        result = await sdk.sync_directory()
    assert result.fetched == 7
    assert [(c.device, c.kind, c.seq) for c in result.changes] == [
        ("so-nordost/bertil", "revoked", 6)
    ]

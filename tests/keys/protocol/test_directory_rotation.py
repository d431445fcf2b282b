"""Rotation (Vault transit model), minimum encryption version, destruction, revocation,
and security-admin changes in the key directory."""

from __future__ import annotations

import pytest
from directory_builders import Admin, Log, replay

from keys.crypto.keypairs import DeviceKeyPair, KeyId
from keys.errors import (
    DirectoryEntryInvalid,
    DirectoryKeyRevoked,
    DirectoryNotAdmin,
    DirectoryUnknownKey,
    RecipientUnitNoDevice,
)
from keys.protocol.directory import Directory, make_entry

ANNA = "so-nordost/anna"


@pytest.fixture
def log() -> Log:
    log = Log.start()
    log.unit("so-nordost")
    log.unit("sav", kind="sav")
    log.enrol(ANNA, contact=True)
    log.enrol("so-nordost/reception", role="integration")
    log.enrol("sav/bengt")
    return log


def kid(version: int, device: str = ANNA) -> KeyId:
    unit, name = device.split("/")
    return KeyId(unit, name, version)


def statuses(log: Log, device: str = ANNA) -> dict[int, str]:
    return {v: k.status for v, k in log.directory.devices[device].versions.items()}


# --- rotation -------------------------------------------------------------------------------
def test_enrolment_starts_at_version_one(log: Log) -> None:
    record = log.directory.devices[ANNA]
    assert (record.current_version, record.min_encryption_version) == (1, 1)
    assert record.role == "officer"
    assert record.contact is True
    assert statuses(log) == {1: "active"}
    assert log.directory.is_acceptable_recipient(kid(1))


def test_the_newest_version_encrypts_and_old_ones_still_verify(log: Log) -> None:
    v1 = log.directory.devices[ANNA].public_keys()
    v2 = log.rotate(ANNA)
    assert statuses(log) == {1: "retired", 2: "active"}
    [anna] = log.directory.encryption_keys("so-nordost", [ANNA])
    assert anna.kid == kid(2)
    assert anna.encryption_key == v2.public().encryption_key
    # Messages signed before the rotation still verify.
    assert log.directory.signing_key(kid(1)) == v1.verify_key
    assert log.directory.signing_key(kid(2)) == v2.signing_key.verify_key
    # Without a raised minimum, a sender with a stale directory may still seal to v1.
    assert log.directory.is_acceptable_recipient(kid(1))
    assert log.directory.is_acceptable_recipient(kid(2))


def test_min_encryption_version_refuses_older_recipients(log: Log) -> None:
    log.rotate(ANNA, min_version=2)
    assert not log.directory.is_acceptable_recipient(kid(1))
    assert log.directory.is_acceptable_recipient(kid(2))
    log.rotate(ANNA)  # v3 keeps the minimum at 2
    assert log.directory.devices[ANNA].min_encryption_version == 2
    assert log.directory.is_acceptable_recipient(kid(2))
    assert not log.directory.is_acceptable_recipient(kid(4))  # no such version


@pytest.mark.parametrize("bad", [0, 3])
def test_min_encryption_version_must_be_within_the_versions(log: Log, bad: int) -> None:
    with pytest.raises(DirectoryEntryInvalid):
        log.rotate(ANNA, min_version=bad)
    assert log.directory.devices[ANNA].current_version == 1


def test_min_encryption_version_cannot_be_lowered(log: Log) -> None:
    log.rotate(ANNA, min_version=2)
    with pytest.raises(DirectoryEntryInvalid, match="lowered"):
        log.rotate(ANNA, min_version=1)


def test_rotation_must_be_to_the_next_version(log: Log) -> None:
    for version in (1, 3):
        pair = DeviceKeyPair.generate(kid(version))
        public = pair.public()
        body = {
            "device": ANNA,
            "version": version,
            "verify_key": public.verify_key.b64(),
            "encryption_key": public.encryption_key.b64(),
            "min_encryption_version": 1,
        }
        with pytest.raises(DirectoryEntryInvalid):
            log.add("rotate_device", body)


def test_rotating_an_unknown_device_is_refused(log: Log) -> None:
    public = DeviceKeyPair.generate(kid(2, "sav/nobody")).public()
    body = {
        "device": "sav/nobody",
        "version": 2,
        "verify_key": public.verify_key.b64(),
        "encryption_key": public.encryption_key.b64(),
        "min_encryption_version": 1,
    }
    with pytest.raises(DirectoryUnknownKey):
        log.add("rotate_device", body)


# --- destruction (crypto-shredding) -------------------------------------------------------------
def test_a_retired_key_is_destroyed_only_below_the_minimum(log: Log) -> None:
    log.rotate(ANNA)
    with pytest.raises(DirectoryEntryInvalid, match="min_encryption_version"):
        log.add("destroy_key", {"device": ANNA, "version": 1})
    log.rotate(ANNA, min_version=2)
    log.add("destroy_key", {"device": ANNA, "version": 1})
    assert statuses(log) == {1: "destroyed", 2: "retired", 3: "active"}
    assert not log.directory.is_acceptable_recipient(kid(1))
    with pytest.raises(DirectoryUnknownKey, match="destroyed") as info:
        log.directory.signing_key(kid(1))
    assert not isinstance(info.value, DirectoryKeyRevoked)
    with pytest.raises(DirectoryEntryInvalid):
        log.add("destroy_key", {"device": ANNA, "version": 1})  # twice


def test_the_active_or_a_missing_version_cannot_be_destroyed(log: Log) -> None:
    with pytest.raises(DirectoryEntryInvalid, match="retired"):
        log.add("destroy_key", {"device": ANNA, "version": 1})
    with pytest.raises(DirectoryEntryInvalid, match="no such"):
        log.add("destroy_key", {"device": ANNA, "version": 7})


# --- revocation -----------------------------------------------------------------------------
def test_revocation_is_immediate_and_covers_every_version(log: Log) -> None:
    log.rotate(ANNA)
    log.add("revoke_device", {"device": ANNA, "reason": "lost"})
    record = log.directory.devices[ANNA]
    assert record.revoked
    assert record.revoked_reason == "lost"
    assert statuses(log) == {1: "revoked", 2: "revoked"}
    for version in (1, 2):
        with pytest.raises(DirectoryKeyRevoked):
            log.directory.signing_key(kid(version))
        assert not log.directory.is_acceptable_recipient(kid(version))
    # Revoked is a kind of unknown: code that only catches DirectoryUnknownKey still refuses.
    assert issubclass(DirectoryKeyRevoked, DirectoryUnknownKey)
    assert DirectoryKeyRevoked.code != DirectoryUnknownKey.code


def test_a_revoked_device_gets_no_more_mail(log: Log) -> None:
    log.add("revoke_device", {"device": ANNA, "reason": "stolen"})
    kids = [k.kid for k in log.directory.encryption_keys("so-nordost")]
    assert kids == [kid(1, "so-nordost/reception")]
    with pytest.raises(DirectoryKeyRevoked):
        log.directory.encryption_keys("so-nordost", [ANNA])


def test_revocation_is_terminal(log: Log) -> None:
    log.rotate(ANNA, min_version=2)
    log.add("revoke_device", {"device": ANNA, "reason": "compromised"})
    with pytest.raises(DirectoryEntryInvalid, match="revoked"):
        log.rotate(ANNA)
    with pytest.raises(DirectoryEntryInvalid, match="revoked"):
        log.add("revoke_device", {"device": ANNA, "reason": "lost"})
    with pytest.raises(DirectoryEntryInvalid, match="revoked"):
        log.add("destroy_key", {"device": ANNA, "version": 1})
    # A revoked kid is never reused: enrolling again starts at the next version only.
    for version in (1, 2, 4):
        with pytest.raises(DirectoryEntryInvalid, match="version"):
            log.enrol(ANNA, version=version)
    log.enrol("so-nordost/anna-2")


def test_revocation_reasons_are_a_controlled_vocabulary(log: Log) -> None:
    with pytest.raises(DirectoryEntryInvalid, match="reason"):
        log.add("revoke_device", {"device": ANNA, "reason": "Anna is on sick leave"})


def test_rotation_and_revocation_differ(log: Log) -> None:
    log.rotate(ANNA)
    log.directory.signing_key(kid(1))  # rotation: old key still verifies
    log.add("revoke_device", {"device": ANNA, "reason": "lost"})
    with pytest.raises(DirectoryKeyRevoked):
        log.directory.signing_key(kid(1))  # revocation: nothing verifies


# --- recipients ------------------------------------------------------------------------------
def test_encryption_keys_for_a_unit_and_named_devices(log: Log) -> None:
    log.rotate(ANNA)
    everyone = log.directory.encryption_keys("so-nordost")
    assert [k.kid for k in everyone] == [kid(2), kid(1, "so-nordost/reception")]
    named = log.directory.encryption_keys("so-nordost", ["anna", ANNA])
    assert [k.kid for k in named] == [kid(2)]
    with pytest.raises(DirectoryUnknownKey):
        log.directory.encryption_keys("so-nordost", ["sav/bengt"])  # another unit
    with pytest.raises(DirectoryUnknownKey):
        log.directory.encryption_keys("so-nordost", ["nobody"])
    with pytest.raises(DirectoryUnknownKey):
        log.directory.encryption_keys("nowhere")
    log.unit("socialjour", kind="socialjour")
    with pytest.raises(RecipientUnitNoDevice):
        log.directory.encryption_keys("socialjour")


def test_signing_key_of_unknown_devices_and_admins(log: Log) -> None:
    with pytest.raises(DirectoryUnknownKey):
        log.directory.signing_key(kid(2))
    with pytest.raises(DirectoryUnknownKey):
        log.directory.signing_key(KeyId("so-nordost", "nobody", 1))
    with pytest.raises(DirectoryUnknownKey):
        log.directory.signing_key(log.admin.kid)  # admins are not devices


def test_records_are_read_only_snapshots(log: Log) -> None:
    record = log.directory.devices[ANNA]
    with pytest.raises(AttributeError):
        record.revoked = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        record.versions[1] = record.versions[1]  # type: ignore[index]
    with pytest.raises(TypeError):
        log.directory.devices[ANNA] = record  # type: ignore[index]
    log.rotate(ANNA)
    assert record.current_version == 1  # the old snapshot did not change under us


# --- security admins ---------------------------------------------------------------------------
def test_a_second_admin_can_sign_and_the_first_can_be_removed(log: Log) -> None:
    eva = Admin.new("eva")
    log.add("add_admin", eva.add_body())
    log.add("create_unit", {"unit": "socialjour", "kind": "socialjour", "name": "SJ"}, by=eva)
    log.add("remove_admin", {"admin": str(log.admin.kid)}, by=eva)
    assert set(log.directory.admins) == {"admin/eva/1"}
    # The removed admin's later entries are refused, however well signed.
    with pytest.raises(DirectoryNotAdmin):
        log.add("create_unit", {"unit": "x", "kind": "other", "name": "X"})
    with pytest.raises(DirectoryNotAdmin):
        log.directory.verify_checkpoint(
            log.directory.checkpoint(log.admin.kid, log.admin.key, log.now)
        )
    log.directory.verify_checkpoint(log.directory.checkpoint(eva.kid, eva.key, log.now))
    # The whole history still verifies from the pinned root.
    assert replay(log).head == log.directory.head


def test_the_last_admin_cannot_be_removed(log: Log) -> None:
    with pytest.raises(DirectoryEntryInvalid, match="last"):
        log.add("remove_admin", {"admin": str(log.admin.kid)})
    eva = Admin.new("eva")
    log.add("add_admin", eva.add_body())
    log.add("remove_admin", {"admin": str(eva.kid)})  # removing oneself is fine ...
    with pytest.raises(DirectoryEntryInvalid, match="last"):
        log.add("remove_admin", {"admin": str(log.admin.kid)})  # ... leaving one


def test_admin_ids_are_not_reused_and_removals_must_name_an_admin(log: Log) -> None:
    eva = Admin.new("eva")
    log.add("add_admin", eva.add_body())
    with pytest.raises(DirectoryEntryInvalid, match="already used"):
        log.add("add_admin", Admin(eva.kid, Admin.new().key).add_body())
    log.add("remove_admin", {"admin": str(eva.kid)})
    with pytest.raises(DirectoryEntryInvalid, match="already used"):
        log.add("add_admin", Admin(eva.kid, Admin.new().key).add_body())
    with pytest.raises(DirectoryEntryInvalid, match="not a current"):
        log.add("remove_admin", {"admin": "admin/nobody/1"})


def test_a_pinned_admin_cannot_be_added_with_another_key() -> None:
    root, eva = Admin.new("root"), Admin.new("eva")
    log = Log.start(root)
    # This client was provisioned pinning both root and eva.
    client = Directory({str(root.kid): root.key.verify_key, str(eva.kid): eva.key.verify_key})
    client.extend(log.entries)
    substitute = Admin(eva.kid, Admin.new().key)
    entry = make_entry(client, "add_admin", substitute.add_body(), root.kid, root.key, log.now + 1)
    with pytest.raises(DirectoryEntryInvalid, match="pinned"):
        client.append(entry)


def test_a_checkpoint_outlives_its_signers_removal(log: Log) -> None:
    old = log.directory.checkpoint(log.admin.kid, log.admin.key, log.now)
    eva = Admin.new("eva")
    log.add("add_admin", eva.add_body())
    log.add("remove_admin", {"admin": str(log.admin.kid)}, by=eva)
    log.directory.verify_checkpoint(old)  # root was an admin at that size
    # eva was not yet an admin at the old size: she cannot vouch for it.
    early = log.directory.checkpoint(eva.kid, eva.key, log.now)
    forged = type(early).sign(old.size, old.head, eva.kid, eva.key, log.now)
    with pytest.raises(DirectoryNotAdmin):
        log.directory.verify_checkpoint(forged)
    log.directory.verify_checkpoint(early)

"""Re-enrolment after a revocation, receipts checked at a past position, empty units."""

from __future__ import annotations

import pytest
from directory_builders import Log, replay

from keys.crypto.keypairs import KeyId
from keys.errors import (
    DirectoryEntryInvalid,
    DirectoryKeyRevoked,
    DirectoryUnknownKey,
    RecipientUnitNoDevice,
)

ANNA = "so-nordost/anna"


def kid(version: int, device: str = ANNA) -> KeyId:
    return KeyId.parse(f"{device}/{version}")


@pytest.fixture
def log() -> Log:
    return Log.with_device(ANNA)


def test_a_revoked_person_is_enrolled_again_at_the_next_version(log: Log) -> None:
    log.rotate(ANNA)
    log.add("revoke_device", {"device": ANNA, "reason": "lost"})
    log.enrol("so-nordost/reception")
    for version in (1, 2):
        # Not revoked: a second enrolment of a live device is refused.
        with pytest.raises(DirectoryEntryInvalid, match=r"already enrolled|version 1"):
            log.enrol("so-nordost/reception", version=version)
    new = log.enrol(ANNA, version=3)
    record = log.directory.devices[ANNA]
    assert not record.revoked
    assert record.current_version == 3
    assert record.min_encryption_version == 3
    assert {v: k.status for v, k in record.versions.items()} == {
        1: "revoked",
        2: "revoked",
        3: "active",
    }
    assert log.directory.signing_key(new.kid) == new.signing_key.verify_key
    for old in (1, 2):
        with pytest.raises(DirectoryKeyRevoked):
            log.directory.signing_key(kid(old))
        assert not log.directory.is_acceptable_recipient(kid(old))
    assert [k.kid for k in log.directory.encryption_keys("so-nordost")] == [
        kid(3),
        kid(1, "so-nordost/reception"),
    ]
    # The re-enrolled device rotates on as any other.
    log.rotate(ANNA)
    assert log.directory.devices[ANNA].current_version == 4


def test_a_receipt_is_checked_against_the_directory_as_it_stood(log: Log) -> None:
    pair = log.enrol("so-nordost/bo")
    bo1 = pair.kid
    signed_at = log.directory.size  # a receipt signed now
    log.rotate("so-nordost/bo", min_version=2)
    log.add("destroy_key", {"device": "so-nordost/bo", "version": 1})
    after_destroy = log.directory.size
    log.add("revoke_device", {"device": "so-nordost/bo", "reason": "lost"})
    # Today neither key may sign ...
    with pytest.raises(DirectoryUnknownKey):
        log.directory.signing_key(bo1)
    # ... but at the position the receipt was signed, version 1 could.
    assert log.directory.signing_key_at(bo1, signed_at) == pair.signing_key.verify_key
    with pytest.raises(DirectoryUnknownKey, match="destroyed"):
        log.directory.signing_key_at(bo1, after_destroy)
    bo2 = kid(2, "so-nordost/bo")
    log.directory.signing_key_at(bo2, after_destroy)
    with pytest.raises(DirectoryKeyRevoked):
        log.directory.signing_key_at(bo2, log.directory.size)
    with pytest.raises(DirectoryUnknownKey, match="not yet"):
        log.directory.signing_key_at(bo2, signed_at)
    for bad in (-1, log.directory.size + 1):
        with pytest.raises(DirectoryUnknownKey):
            log.directory.signing_key_at(bo1, bad)


def test_the_spans_survive_a_replay_and_a_copy(log: Log) -> None:
    signed_at = log.directory.size
    log.add("revoke_device", {"device": ANNA, "reason": "stolen"})
    for directory in (replay(log), log.directory.copy()):
        directory.signing_key_at(kid(1), signed_at)
        with pytest.raises(DirectoryKeyRevoked):
            directory.signing_key_at(kid(1), directory.size)


def test_a_unit_with_no_active_device_has_its_own_code(log: Log) -> None:
    log.unit("sav", kind="sav")
    with pytest.raises(RecipientUnitNoDevice) as caught:
        log.directory.encryption_keys("sav")
    assert caught.value.code == "recipient_unit_no_device"
    log.add("revoke_device", {"device": ANNA, "reason": "lost"})
    with pytest.raises(RecipientUnitNoDevice):
        log.directory.encryption_keys("so-nordost")
    with pytest.raises(DirectoryUnknownKey):
        log.directory.encryption_keys("no-such-unit")

"""The key directory refuses every altered history: edited, dropped, reordered, unsigned,
signed by a non-admin, or forked. Key material is validated on entry."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from directory_builders import Admin, Log, enrol_body, replay

from keys.crypto.keypairs import DeviceKeyPair, KeyId
from keys.errors import (
    DirectoryBehind,
    DirectoryChainBroken,
    DirectoryEntryInvalid,
    DirectoryError,
    DirectoryForked,
    DirectoryNotAdmin,
    DirectorySignatureInvalid,
    DirectoryUnknownKey,
)
from keys.protocol.checkpoint import Checkpoint
from keys.protocol.directory import Directory, DirectoryEntry, make_entry

# X25519 public keys that must never be accepted: the low-order points (order 1, 2, 4, 8)
# and their non-canonical spellings (u >= p, or the unused top bit set), as listed by
# libsodium and the Wycheproof "low order public key" cases.
BAD_X25519 = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
    "4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
    "d9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
]
# Ed25519 public keys that must be refused: small-order points (identity, order 2, 4, 8)
# and non-canonical encodings (y >= p).
BAD_ED25519 = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1
]


def b64(hex_text: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_text)).decode()


@pytest.fixture
def log() -> Log:
    log = Log.start()
    log.unit("so-nordost")
    log.unit("sav", kind="sav")
    log.enrol("so-nordost/anna", contact=True)
    log.enrol("sav/bengt")
    log.rotate("so-nordost/anna")
    log.add("revoke_device", {"device": "sav/bengt", "reason": "lost"})
    return log


def test_an_honest_log_verifies_to_the_same_state(log: Log) -> None:
    directory = replay(log)
    assert directory.size == len(log.entries) == 7
    assert directory.head == log.directory.head == log.entries[-1].hash()
    assert directory.entry_hash(0) == log.entries[0].hash()
    assert log.entries[1].prev_hash == log.entries[0].hash()
    assert set(directory.units) == {"so-nordost", "sav"}
    assert directory.devices["so-nordost/anna"].current_version == 2
    assert directory.devices["sav/bengt"].revoked


def test_an_empty_directory_has_a_zero_head() -> None:
    admin = Admin.new()
    directory = Directory({str(admin.kid): admin.key.verify_key})
    assert directory.size == 0
    assert directory.head == bytes(32)


def test_json_round_trip_is_exact(log: Log) -> None:
    for entry in log.entries:
        obj = entry.to_json()
        again = DirectoryEntry.from_json(obj)
        assert again == entry
        assert again.to_json() == obj
        assert again.hash() == entry.hash()


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("seq", 99, DirectoryChainBroken),
        ("created", 10**10, DirectorySignatureInvalid),
        ("signer", "admin/other/1", DirectoryNotAdmin),
        ("prev_hash", "00" * 32, DirectoryChainBroken),
    ],
)
def test_an_edited_entry_is_refused(
    log: Log, field: str, value: Any, error: type[DirectoryError]
) -> None:
    obj = log.entries[3].to_json()
    obj[field] = value
    edited = DirectoryEntry.from_json(obj)
    with pytest.raises(error, match="entry 3"):
        replay(log, [*log.entries[:3], edited, *log.entries[4:]])


def test_an_entry_whose_type_is_edited_is_refused_at_the_door(log: Log) -> None:
    obj = log.entries[3].to_json()
    obj["type"] = "rotate_device"
    with pytest.raises(DirectoryEntryInvalid):
        DirectoryEntry.from_json(obj)


def test_an_edited_body_is_refused_by_its_signature(log: Log) -> None:
    target = log.entries[3]  # enrol so-nordost/anna
    other = DeviceKeyPair.generate(KeyId("so-nordost", "anna", 1))
    swapped = replace(
        target, body={**target.body, "encryption_key": enrol_body(other)["encryption_key"]}
    )
    with pytest.raises(DirectorySignatureInvalid, match="entry 3"):
        replay(log, [*log.entries[:3], swapped])
    flipped = replace(target, body={**target.body, "contact": False})
    with pytest.raises(DirectorySignatureInvalid):
        replay(log, [*log.entries[:3], flipped])


def test_an_edit_that_keeps_a_valid_signature_still_breaks_the_chain(log: Log) -> None:
    # The admin signs a second version of entry 3: the signature is fine, the chain is not.
    forged = log.sign("create_unit", {"unit": "socialjour", "kind": "socialjour", "name": "SJ"})
    forged = make_entry(
        replay(log, log.entries[:3]),
        "create_unit",
        dict(forged.body),
        log.admin.kid,
        log.admin.key,
        forged.created,
    )
    with pytest.raises(DirectoryChainBroken, match="entry 4"):
        replay(log, [*log.entries[:3], forged, *log.entries[4:]])


@pytest.mark.parametrize("index", [0, 1, 3, 5])
def test_a_dropped_entry_is_refused(log: Log, index: int) -> None:
    entries = log.entries[:index] + log.entries[index + 1 :]
    with pytest.raises((DirectoryChainBroken, DirectoryNotAdmin)):
        replay(log, entries)


def test_a_dropped_tail_is_a_rollback_the_client_detects(log: Log) -> None:
    seen = log.directory.checkpoint(log.admin.kid, log.admin.key, log.now)
    rolled_back = replay(log, log.entries[:-1])  # hides the revocation of sav/bengt
    with pytest.raises(DirectoryBehind):
        rolled_back.check_consistent(seen.size, seen.head)


@pytest.mark.parametrize("index", [1, 2, 4, 5])
def test_reordered_entries_are_refused(log: Log, index: int) -> None:
    entries = list(log.entries)
    entries[index], entries[index + 1] = entries[index + 1], entries[index]
    with pytest.raises(DirectoryChainBroken):
        replay(log, entries)


def test_an_unsigned_entry_is_refused(log: Log) -> None:
    entry = log.sign("create_unit", {"unit": "socialjour", "kind": "socialjour", "name": "SJ"})
    with pytest.raises(DirectorySignatureInvalid):
        log.directory.append(replace(entry, sig=bytes(64)))
    obj = entry.to_json()
    del obj["sig"]
    with pytest.raises(DirectoryEntryInvalid):
        DirectoryEntry.from_json(obj)


def test_an_entry_signed_by_a_non_admin_is_refused(log: Log) -> None:
    stranger = Admin.new("mallory")
    entry = log.sign(
        "create_unit", {"unit": "socialjour", "kind": "socialjour", "name": "SJ"}, by=stranger
    )
    with pytest.raises(DirectoryNotAdmin):
        log.directory.append(entry)
    # Claiming to be the root admin while signing with another key: the signature fails.
    impostor = Admin(log.admin.kid, stranger.key)
    entry = log.sign(
        "create_unit", {"unit": "socialjour", "kind": "socialjour", "name": "SJ"}, by=impostor
    )
    with pytest.raises(DirectorySignatureInvalid):
        log.directory.append(entry)
    # A device key is not an admin key, even signing with an admin-shaped kid.
    device = DeviceKeyPair.generate(KeyId("so-nordost", "eve", 1))
    entry = log.sign(
        "create_unit",
        {"unit": "x", "kind": "other", "name": "X"},
        by=Admin(KeyId("admin", "eve", 1), device.signing_key),
    )
    with pytest.raises(DirectoryNotAdmin):
        log.directory.append(entry)


def test_a_refused_entry_leaves_the_state_unchanged(log: Log) -> None:
    before = (
        log.directory.size,
        log.directory.head,
        dict(log.directory.devices),
        dict(log.directory.admins),
    )
    pair = DeviceKeyPair.generate(KeyId("nowhere", "x", 1))
    for bad in [
        log.sign("enrol_device", enrol_body(pair)),  # unit does not exist
        log.sign("rotate_device", {**enrol_body(pair), "device": "sav/bengt"}),  # wrong body
        log.sign("remove_admin", {"admin": str(log.admin.kid)}),  # last admin
        log.sign("revoke_device", {"device": "sav/bengt", "reason": "lost"}),  # already revoked
    ]:
        with pytest.raises(DirectoryError):
            log.directory.append(bad)
        assert (
            log.directory.size,
            log.directory.head,
            dict(log.directory.devices),
            dict(log.directory.admins),
        ) == before
    log.unit("socialjour", kind="socialjour")  # and the directory still works
    assert log.directory.size == before[0] + 1


def test_entry_zero_must_be_the_pinned_root_adding_itself() -> None:
    root, other = Admin.new("root"), Admin.new("other")
    pinned = {str(root.kid): root.key.verify_key}
    empty = Directory(pinned)
    not_pinned = make_entry(empty, "add_admin", other.add_body(), other.kid, other.key, 1)
    with pytest.raises(DirectoryNotAdmin):
        Directory(pinned).append(not_pinned)
    adds_someone_else = make_entry(empty, "add_admin", other.add_body(), root.kid, root.key, 1)
    with pytest.raises(DirectoryEntryInvalid):
        Directory(pinned).append(adds_someone_else)
    not_an_add = make_entry(
        empty, "create_unit", {"unit": "sav", "kind": "sav", "name": "SAV"}, root.kid, root.key, 1
    )
    with pytest.raises(DirectoryEntryInvalid):
        Directory(pinned).append(not_an_add)
    # A log started by another root is refused by a client that pinned ours.
    foreign = Log.start(other)
    with pytest.raises(DirectoryNotAdmin):
        Directory(pinned).extend(foreign.entries)


def test_created_never_goes_backwards(log: Log) -> None:
    entry = make_entry(
        log.directory,
        "create_unit",
        {"unit": "x", "kind": "other", "name": "X"},
        log.admin.kid,
        log.admin.key,
        5,
    )
    with pytest.raises(DirectoryEntryInvalid, match="created"):
        log.directory.append(entry)


# --- forks and checkpoints ----------------------------------------------------------------
def test_a_forked_directory_is_refused(log: Log) -> None:
    client = replay(log)
    seen = client.checkpoint(log.admin.kid, log.admin.key, log.now)
    # The gateway shows this client a history in which entry 6 is something else.
    fork = Log(log.admin, replay(log, log.entries[:6]), list(log.entries[:6]), log.now)
    fork.add("create_unit", {"unit": "socialjour", "kind": "socialjour", "name": "SJ"})
    fork.unit("las-hisingen", kind="las")
    synced = replay(log, fork.entries)  # every entry is admin-signed and chains
    with pytest.raises(DirectoryForked, match="entry 6"):
        synced.check_consistent(seen.size, seen.head)
    # The honest continuation is consistent, however long it grows.
    log.unit("socialjour", kind="socialjour")
    grown = replay(log)
    grown.check_consistent(seen.size, seen.head)
    grown.verify_checkpoint(seen)


def test_a_checkpoint_ahead_of_us_means_sync_first(log: Log) -> None:
    ahead = log.directory.checkpoint(log.admin.kid, log.admin.key, log.now)
    with pytest.raises(DirectoryBehind):
        replay(log, log.entries[:3]).check_consistent(ahead.size, ahead.head)


def test_an_empty_checkpoint_must_have_a_zero_head(log: Log) -> None:
    log.directory.check_consistent(0, bytes(32))
    with pytest.raises(DirectoryForked):
        log.directory.check_consistent(0, bytes([1]) * 32)


def test_checkpoint_signature_and_signer(log: Log) -> None:
    checkpoint = log.directory.checkpoint(log.admin.kid, log.admin.key, log.now)
    assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint
    checkpoint.verify(log.admin.key.verify_key)
    log.directory.verify_checkpoint(checkpoint)
    with pytest.raises(DirectorySignatureInvalid):
        replace(checkpoint, size=checkpoint.size - 1).verify(log.admin.key.verify_key)
    with pytest.raises(DirectorySignatureInvalid):
        log.directory.verify_checkpoint(replace(checkpoint, head=log.entries[0].hash()))
    stranger = Admin.new("mallory")
    forged = Checkpoint.sign(checkpoint.size, checkpoint.head, stranger.kid, stranger.key, log.now)
    with pytest.raises(DirectoryNotAdmin):
        log.directory.verify_checkpoint(forged)


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"head": "AB" * 32},
        {"size": True},
        {"size": -1},
        {"sig": "not base64"},
        {"extra": 1},
    ],
)
def test_malformed_checkpoints_are_refused(log: Log, change: dict[str, Any]) -> None:
    obj = log.directory.checkpoint(log.admin.kid, log.admin.key, log.now).to_json()
    obj.update(change)
    with pytest.raises(DirectoryError):
        Checkpoint.from_json(obj)


# --- entry shape and key material ------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"seq": True},
        {"seq": -1},
        {"seq": "3"},
        {"prev_hash": "AB" * 32},
        {"prev_hash": "ab" * 31},
        {"type": "delete_everything"},
        {"signer": "so-nordost/anna/1"},
        {"signer": "admin/root/01"},
        {"created": 1.5},
        {"sig": "AAAA"},
        {"body": []},
        {"extra": "field"},
    ],
)
def test_malformed_entries_are_refused(log: Log, change: dict[str, Any]) -> None:
    obj = log.entries[3].to_json()
    obj.update(change)
    with pytest.raises(DirectoryEntryInvalid):
        DirectoryEntry.from_json(obj)


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"role": "boss"},
        {"contact": 1},
        {"device": "admin/anna"},
        {"device": "So-Nordost/anna"},
        {"extra": "x"},
        {"verify_key": "AAAA"},
        {"encryption_key": base64.b64encode(bytes(31)).decode()},
    ],
)
def test_malformed_enrolment_bodies_are_refused(log: Log, change: dict[str, Any]) -> None:
    pair = DeviceKeyPair.generate(KeyId("so-nordost", "carl", 1))
    with pytest.raises(DirectoryEntryInvalid):
        log.add("enrol_device", {**enrol_body(pair), **change})


@pytest.mark.parametrize("bad", BAD_X25519)
def test_low_order_and_non_canonical_x25519_keys_are_refused(log: Log, bad: str) -> None:
    pair = DeviceKeyPair.generate(KeyId("so-nordost", "carl", 1))
    with pytest.raises(DirectoryEntryInvalid, match="encryption_key"):
        log.add("enrol_device", {**enrol_body(pair), "encryption_key": b64(bad)})


@pytest.mark.parametrize("bad", BAD_ED25519)
def test_small_order_and_non_canonical_ed25519_keys_are_refused(log: Log, bad: str) -> None:
    pair = DeviceKeyPair.generate(KeyId("so-nordost", "carl", 1))
    with pytest.raises(DirectoryEntryInvalid, match="verify_key"):
        log.add("enrol_device", {**enrol_body(pair), "verify_key": b64(bad)})
    with pytest.raises(DirectoryEntryInvalid, match="verify_key"):
        log.add("add_admin", {"admin": "admin/eva/1", "verify_key": b64(bad)})


def test_a_public_key_appears_only_once(log: Log) -> None:
    anna = log.directory.devices["so-nordost/anna"].public_keys()
    pair = DeviceKeyPair.generate(KeyId("so-nordost", "carl", 1))
    copied_enc = {**enrol_body(pair), "encryption_key": anna.encryption_key.b64()}
    with pytest.raises(DirectoryEntryInvalid, match="already"):
        log.add("enrol_device", copied_enc)
    # The revoked laptop's key re-enrolled under a new name: refused.
    bengt = log.directory.devices["sav/bengt"].versions[1]
    with pytest.raises(DirectoryEntryInvalid, match="already"):
        log.add("enrol_device", {**enrol_body(pair), "verify_key": bengt.verify_key.b64()})
    with pytest.raises(DirectoryEntryInvalid, match="already"):
        log.add("add_admin", {"admin": "admin/eva/1", "verify_key": log.admin.key.verify_key.b64()})


def test_unknown_devices_and_units(log: Log) -> None:
    with pytest.raises(DirectoryUnknownKey):
        log.add("revoke_device", {"device": "so-nordost/nobody", "reason": "lost"})
    with pytest.raises(DirectoryEntryInvalid):
        log.add("create_unit", {"unit": "sav", "kind": "sav", "name": "again"})
    with pytest.raises(DirectoryEntryInvalid):
        log.add("create_unit", {"unit": "admin", "kind": "other", "name": "reserved"})
    with pytest.raises(DirectoryEntryInvalid):
        log.add("create_unit", {"unit": "x", "kind": "other", "name": "bell\x07"})

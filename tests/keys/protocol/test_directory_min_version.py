"""``set_min_encryption_version``: raise a device's minimum without a second rotation.

Vault's transit model: rotate (the new version encrypts, old ones still decrypt), wait
until nothing pending is sealed to the old version, raise the minimum past it (senders
and the gateway refuse it from then on), then record that its private key was
destroyed. Before this entry type the only way to raise the minimum was another
rotation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from directory_builders import Log, replay
from jsonschema import Draft202012Validator

from keys.crypto.keypairs import KeyId
from keys.errors import DirectoryEntryInvalid, DirectoryKeyRevoked, DirectoryUnknownKey
from keys.protocol.directory_entry import DirectoryEntry
from tests.support.keys_admin import ok, refused, request_file, verified
from tests.support.paths import REPO

ANNA = "so-nordost/anna"
SCHEMA = REPO / "schemas" / "directory-entry.json"


@pytest.fixture
def log() -> Log:
    log = Log.start()
    log.unit("so-nordost")
    log.enrol(ANNA)
    return log


def kid(version: int) -> KeyId:
    return KeyId("so-nordost", "anna", version)


def raise_min(log: Log, minimum: object, device: str = ANNA) -> DirectoryEntry:
    return log.add(
        "set_min_encryption_version", {"device": device, "min_encryption_version": minimum}
    )


def test_rotate_raise_destroy_without_a_second_rotation(log: Log) -> None:
    log.rotate(ANNA)  # keeps minimum 1: pending messages to v1 still deliverable
    assert log.directory.is_acceptable_recipient(kid(1))
    raise_min(log, 2)
    record = log.directory.devices[ANNA]
    assert (record.current_version, record.min_encryption_version) == (2, 2)
    assert not log.directory.is_acceptable_recipient(kid(1))  # the gateway refuses it now
    assert log.directory.is_acceptable_recipient(kid(2))
    # v1 still verifies (pending messages it signed) until it is destroyed
    assert log.directory.signing_key(kid(1))
    log.add("destroy_key", {"device": ANNA, "version": 1})
    assert {v: k.status for v, k in log.directory.devices[ANNA].versions.items()} == {
        1: "destroyed",
        2: "active",
    }
    # a fresh verifier replays to the same state (the entry is in the signed chain)
    again = replay(log)
    assert again.devices[ANNA] == log.directory.devices[ANNA]
    assert again.head == log.directory.head


@pytest.mark.parametrize("minimum", [1, 0, 3, -1, True, "2", None, 1_000_000])
def test_the_minimum_only_goes_up_and_never_past_the_current_version(
    log: Log, minimum: object
) -> None:
    log.rotate(ANNA)
    before = (log.directory.size, log.directory.head)
    with pytest.raises(DirectoryEntryInvalid):
        raise_min(log, minimum)
    assert (log.directory.size, log.directory.head) == before  # nothing applied


def test_a_raise_after_a_rotation_cannot_be_undone_by_the_next_rotation(log: Log) -> None:
    log.rotate(ANNA)
    raise_min(log, 2)
    with pytest.raises(DirectoryEntryInvalid, match="lowered"):
        log.rotate(ANNA, min_version=1)
    log.rotate(ANNA, min_version=2)
    raise_min(log, 3)
    assert log.directory.devices[ANNA].min_encryption_version == 3


def test_unknown_and_revoked_devices_are_refused(log: Log) -> None:
    with pytest.raises(DirectoryUnknownKey):
        raise_min(log, 1, device="so-nordost/nobody")
    log.rotate(ANNA)
    log.add("revoke_device", {"device": ANNA, "reason": "lost"})
    with pytest.raises(DirectoryEntryInvalid, match="revoked"):
        raise_min(log, 2)
    with pytest.raises(DirectoryKeyRevoked):
        log.directory.signing_key(kid(2))


def test_the_body_has_exactly_its_fields(log: Log) -> None:
    log.rotate(ANNA)
    for body in (
        {"device": ANNA},
        {"device": ANNA, "min_encryption_version": 2, "version": 2},
        {"device": "admin/x", "min_encryption_version": 2},
    ):
        with pytest.raises(DirectoryEntryInvalid):
            log.add("set_min_encryption_version", body)


def test_the_schema_agrees(log: Log) -> None:
    log.rotate(ANNA)
    entry = raise_min(log, 2).to_json()
    check = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    check.validate(entry)
    assert DirectoryEntry.from_json(json.loads(json.dumps(entry))) == log.entries[-1]
    for bad in ({"min_encryption_version": 0}, {"extra": 1}, {"device": "admin/x"}):
        assert not check.is_valid({**entry, "body": {**entry["body"], **bad}})
    body = dict(entry["body"])
    del body["min_encryption_version"]
    assert not check.is_valid({**entry, "body": body})


def test_the_cli_raises_the_minimum_then_destroys(
    admin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "device", "enrol", str(request_file(tmp_path, ANNA)))
    ok(capsys, "device", "rotate", str(request_file(tmp_path, ANNA, 2)))
    assert "raise min_encryption_version" in refused(capsys, "key", "destroy", ANNA, "1")
    out = ok(capsys, "device", "min-version", ANNA, "2")
    assert "set_min_encryption_version" in out
    ok(capsys, "key", "destroy", ANNA, "1")
    record = verified(admin_dir).devices[ANNA]
    assert record.min_encryption_version == 2
    assert record.current_version == 2  # no second rotation was needed
    assert {v: k.status for v, k in record.versions.items()} == {1: "destroyed", 2: "active"}
    err = refused(capsys, "device", "min-version", ANNA, "1")
    assert "directory_entry_invalid" in err
    refused(capsys, "device", "min-version", ANNA, "x", code=2)

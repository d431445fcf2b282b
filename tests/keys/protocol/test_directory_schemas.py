"""The JSON Schemas in schemas/ agree with what the code writes and refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from directory_builders import T0, Admin, Log
from jsonschema import Draft202012Validator

from keys.crypto.keypairs import DeviceKeyPair, KeyId
from keys.errors import DirectorySignatureInvalid, EnrolmentRequestInvalid
from keys.protocol.enrolment import EnrolmentRequest, make_enrolment_request
from tests.support.paths import REPO

SCHEMAS = REPO / "schemas"


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    log = Log.start()
    log.unit("so-nordost")
    log.enrol("so-nordost/anna", contact=True)
    log.enrol("so-nordost/bridge", role="integration")
    log.rotate("so-nordost/anna")
    log.rotate("so-nordost/anna", min_version=3)
    log.add("destroy_key", {"device": "so-nordost/anna", "version": 1})
    log.add("revoke_device", {"device": "so-nordost/bridge", "reason": "decommissioned"})
    eva = Admin.new("eva")
    log.add("add_admin", eva.add_body())
    log.add("remove_admin", {"admin": str(log.admin.kid)}, by=eva)
    return [e.to_json() for e in log.entries]


def test_every_entry_type_the_code_writes_validates(entries: list[dict[str, Any]]) -> None:
    check = validator("directory-entry.json")
    assert {e["type"] for e in entries} == {
        "add_admin",
        "remove_admin",
        "create_unit",
        "enrol_device",
        "rotate_device",
        "revoke_device",
        "destroy_key",
    }
    for entry in entries:
        check.validate(entry)


@pytest.mark.parametrize(
    ("index", "path", "value"),
    [
        (0, (), {"extra": 1}),
        (0, ("body",), {"extra": 1}),
        (1, ("body",), {"unit": "admin"}),
        (2, ("body",), {"version": 0}),
        (2, ("body",), {"device": "admin/anna"}),
        (2, ("body",), {"role": "boss"}),
        (4, ("body",), {"version": 1}),
        (7, ("body",), {"reason": "free text"}),
        (0, (), {"signer": "so-nordost/anna/1"}),
        (0, (), {"sig": "AAAA"}),
        (0, (), {"prev_hash": "AB" * 32}),
    ],
)
def test_the_entry_schema_refuses_what_the_code_refuses(
    entries: list[dict[str, Any]], index: int, path: tuple[str, ...], value: dict[str, Any]
) -> None:
    entry = json.loads(json.dumps(entries[index]))
    target = entry
    for key in path:
        target = target[key]
    target.update(value)
    assert not validator("directory-entry.json").is_valid(entry)


def test_a_missing_signature_is_refused_by_the_schema(entries: list[dict[str, Any]]) -> None:
    entry = dict(entries[1])
    del entry["sig"]
    assert not validator("directory-entry.json").is_valid(entry)


def test_checkpoint_schema() -> None:
    log = Log.start()
    obj = log.directory.checkpoint(log.admin.kid, log.admin.key, T0).to_json()
    check = validator("checkpoint.json")
    check.validate(obj)
    for change in ({"extra": 1}, {"head": "x"}, {"size": -1}, {"v": 2}):
        assert not check.is_valid({**obj, **change})


def test_enrolment_request_round_trip_and_schema() -> None:
    check = validator("enrolment-request.json")
    pair = DeviceKeyPair.generate(KeyId("so-nordost", "anna", 1))
    request = make_enrolment_request(pair, T0)
    obj = request.to_json()
    check.validate(obj)
    again = EnrolmentRequest.from_json(obj)
    assert again == request
    again.verify_self_signature()
    assert again.kid == pair.kid
    rotation = make_enrolment_request(
        DeviceKeyPair.generate(KeyId("so-nordost", "anna", 2)), T0, rotation=True
    )
    check.validate(rotation.to_json())
    # Enrolled again after a revocation: an enrolment at a later version is well-formed.
    check.validate({**obj, "version": 3})
    for change in ({"extra": 1}, {"version": 0}, {"type": "please"}, {"device": "admin/x"}):
        assert not check.is_valid({**obj, **change})
        with pytest.raises(EnrolmentRequestInvalid):
            EnrolmentRequest.from_json({**obj, **change})


def test_an_enrolment_request_must_be_signed_by_the_key_it_carries() -> None:
    pair = DeviceKeyPair.generate(KeyId("so-nordost", "anna", 1))
    other = DeviceKeyPair.generate(KeyId("so-nordost", "anna", 1))
    obj = make_enrolment_request(pair, T0).to_json()
    obj["verify_key"] = other.signing_key.verify_key.b64()
    with pytest.raises(DirectorySignatureInvalid):
        EnrolmentRequest.from_json(obj).verify_self_signature()
    obj = make_enrolment_request(pair, T0).to_json()
    obj["created"] += 1
    with pytest.raises(DirectorySignatureInvalid):
        EnrolmentRequest.from_json(obj).verify_self_signature()


def test_an_enrolment_request_with_a_low_order_key_is_refused() -> None:
    pair = DeviceKeyPair.generate(KeyId("so-nordost", "anna", 1))
    obj = make_enrolment_request(pair, T0).to_json()
    obj["encryption_key"] = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  # u = 1
    with pytest.raises(EnrolmentRequestInvalid, match="key refused"):
        EnrolmentRequest.from_json(obj)

"""Regression tests from the security review of keys/ (one section per finding).

Each test failed before its fix: deeply nested JSON crashed the parsers with
RecursionError; "$"-anchored patterns let a trailing newline through as a second
spelling of signed ids and hashes; the envelope header's repr carried the subject
reference; key ids could be built in code with names no parser accepts; a keystore
could not be refused for test-mode KDF cost; audit data took personnummer-shaped keys.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from directory_builders import Log
from envelope_support import MAGIC, Parties, make_header, seal_bytes

from keys.crypto.canonical import MAX_DEPTH, NotCanonical, canonical_json, parse_canonical
from keys.crypto.keypairs import DeviceId, KeyId, SigningKey
from keys.crypto.keystore import KdfCost, Keystore, load_keystore, save_keystore
from keys.errors import (
    AuditDataForbidden,
    AuditEntryInvalid,
    ConsentRecordInvalid,
    DirectoryEntryInvalid,
    EnvelopeError,
    EnvelopeHeaderInvalid,
    EnvelopeMalformed,
    KeyIdInvalid,
    KeystoreWeakKdf,
    ReceiptInvalid,
)
from keys.protocol.auditlog import check_audit_data, make_audit_entry, parse_audit_entry
from keys.protocol.checkpoint import Checkpoint
from keys.protocol.consent_record import parse_consent_record
from keys.protocol.directory import DirectoryEntry
from keys.protocol.envelope import EnvelopeHeader, read_header, verify_envelope
from keys.protocol.envelope_header import MAX_HEADER_BYTES
from keys.protocol.receipt import make_receipt, parse_receipt
from tests.support.factories import consent_draft

ANNA = KeyId.parse("so-nordost/anna/2")
EVA = KeyId.parse("sav/eva/1")


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + close * depth).encode()


# --- 1. deeply nested JSON is a refusal, never a RecursionError ----------------------------
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, MAX_HEADER_BYTES // 2])
def test_deep_nesting_is_not_canonical(depth: int) -> None:
    with pytest.raises(NotCanonical):
        parse_canonical(nested(depth))
    deep_object = b'{"a":' * depth + b"1" + b"}" * depth
    with pytest.raises(NotCanonical):
        parse_canonical(deep_object)


def test_nesting_up_to_the_limit_is_fine() -> None:
    value: Any = 1
    for _ in range(MAX_DEPTH):
        value = [value]
    assert parse_canonical(canonical_json(value)) == value
    with pytest.raises(NotCanonical):
        canonical_json([value])


def _prefix(header: bytes, wrapped: bytes = b"[]") -> bytes:
    return (
        MAGIC + struct.pack(">I", len(header)) + header + struct.pack(">I", len(wrapped)) + wrapped
    )


def test_a_deeply_nested_envelope_header_is_refused_as_invalid() -> None:
    data = _prefix(nested(MAX_HEADER_BYTES // 2))
    with pytest.raises(EnvelopeHeaderInvalid):
        read_header(io.BytesIO(data))
    with pytest.raises(EnvelopeHeaderInvalid):
        verify_envelope(io.BytesIO(data), Parties().resolve)


def test_deeply_nested_wrapped_keys_are_refused_as_malformed() -> None:
    parties = Parties()
    header = make_header((parties.anna.kid,), parties.sender.kid).canonical()
    with pytest.raises(EnvelopeMalformed):
        read_header(io.BytesIO(_prefix(header, nested(30_000))))


def test_a_deeply_nested_directory_line_is_refused() -> None:
    with pytest.raises(NotCanonical):
        DirectoryEntry.from_json(parse_canonical(b'{"body":' * 3000 + b"{}" + b"}" * 3000))


# --- 2. a trailing newline is not a second spelling ------------------------------------------
HEADER_FIELDS = ["message_id", "subject_ref", "category", "purpose", "consent_id"]


@pytest.mark.parametrize("field", [*HEADER_FIELDS, "checkpoint_head", "in_reply_to"])
def test_header_fields_with_a_trailing_newline_are_refused(field: str) -> None:
    header = make_header((ANNA,), EVA, in_reply_to="5b0d8f7e-3c1a-4e2b-9f6d-0a1b2c3d4e5f")
    with pytest.raises(EnvelopeHeaderInvalid, match=field):
        replace(header, **{field: getattr(header, field) + "\n"})
    # and on the wire, where the signature would cover the odd spelling
    value = header.to_json()
    if field == "checkpoint_head":
        value["checkpoint"]["head"] += "\n"
    else:
        value[field] += "\n"
    with pytest.raises(EnvelopeHeaderInvalid):
        EnvelopeHeader.from_bytes(canonical_json(value))


def test_directory_and_checkpoint_hashes_with_a_trailing_newline_are_refused() -> None:
    log = Log.start()
    entry = log.entries[0].to_json()
    entry["prev_hash"] += "\n"
    with pytest.raises(DirectoryEntryInvalid):
        DirectoryEntry.from_json(entry)
    checkpoint = log.directory.checkpoint(log.admin.kid, log.admin.key, 1).to_json()
    checkpoint["head"] += "\n"
    with pytest.raises(DirectoryEntryInvalid):
        Checkpoint.from_json(checkpoint)


def _receipt(**change: Any) -> dict[str, Any]:
    receipt = make_receipt(
        message_id="5b0d8f7e-3c1a-4e2b-9f6d-0a1b2c3d4e5f",
        header_hash=bytes(range(32)),
        recipient=ANNA,
        status="rejected",
        reason="wrong_district",
        received_at=1_760_000_000,
        key=SigningKey.generate(),
    )
    return {**receipt, **change}


@pytest.mark.parametrize("field", ["message_id", "header_hash", "reason"])
def test_receipt_fields_with_a_trailing_newline_are_refused(field: str) -> None:
    receipt = _receipt()
    parse_receipt(receipt)
    with pytest.raises(ReceiptInvalid):
        parse_receipt({**receipt, field: receipt[field] + "\n"})


def _consent() -> dict[str, Any]:
    return consent_draft(
        now=1_760_000_000,
        consent_id="0b7e6a52-2f7c-4d7e-9a51-3c4a2f1d9e01",
        recorder="sav/anna/1",
        between=[("sav", "las-storgoteborg")],
        categories=["application"],
        purposes=["initial_threat_assessment"],
    )


@pytest.mark.parametrize("field", ["consent_id", "subject_ref", "evidence_hash"])
def test_consent_fields_with_a_trailing_newline_are_refused(field: str) -> None:
    record = _consent()
    parse_consent_record(record, require_sig=False)
    with pytest.raises(ConsentRecordInvalid):
        parse_consent_record({**record, field: record[field] + "\n"}, require_sig=False)


@pytest.mark.parametrize(("field", "value"), [("prev_hash", "0" * 64 + "\n"), ("event", "sent\n")])
def test_audit_fields_with_a_trailing_newline_are_refused(field: str, value: str) -> None:
    entry = make_audit_entry(None, 0, 1_760_000_000, "sent", {"message_id": "m1"}).to_json()
    del entry["hash"]
    entry[field] = value
    with pytest.raises(AuditEntryInvalid):
        parse_audit_entry(entry)


# --- 3. no subject reference in the repr of a header or an envelope result ------------------
def test_header_and_envelope_reprs_leave_out_the_subject_reference(tmp_path: Path) -> None:
    parties = Parties()
    header = make_header((parties.anna.kid,), parties.sender.kid)
    assert header.subject_ref not in repr(header)
    data = seal_bytes(parties, b"hej", recipients=(parties.anna,))
    verified = verify_envelope(io.BytesIO(data), parties.resolve)
    assert header.subject_ref not in repr(verified)
    assert header.subject_ref not in str(verified)
    assert header.subject_ref not in repr([verified.header])


# --- 4. ids are valid however they are built --------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [("../etc", "x", 1), ("sav", "a/b", 1), ("sav", "Anna", 1), ("sav", "anna\n", 1),
     ("sav", "anna", 0), ("sav", "anna", 1_000_000), ("sav", "anna", True), ("", "anna", 1)],
)  # fmt: skip
def test_key_ids_built_in_code_follow_the_grammar(args: tuple[Any, ...]) -> None:
    with pytest.raises(KeyIdInvalid):
        KeyId(*args)
    assert KeyId("sav", "anna", 999_999).device == DeviceId("sav", "anna")


@pytest.mark.parametrize("name", ["..", "a/b", "Anna", "anna\n", "", "-a", "a" * 65])
def test_device_ids_built_in_code_follow_the_grammar(name: str) -> None:
    with pytest.raises(KeyIdInvalid):
        DeviceId("sav", name)
    with pytest.raises(KeyIdInvalid):
        DeviceId(name, "anna")


# --- 5. a keystore below the device's required KDF cost is refused ---------------------------
def test_a_keystore_with_test_cost_can_be_refused(tmp_path: Path) -> None:
    path = tmp_path / "device.keystore"
    store = Keystore(owner="so-nordost/anna")
    save_keystore(path, store, "lång lösenfras här", cost=KdfCost.TEST)
    with pytest.raises(KeystoreWeakKdf) as caught:
        load_keystore(path, "lång lösenfras här", min_cost=KdfCost.INTERACTIVE)
    assert caught.value.code == "keystore_weak_kdf"
    # refused before the KDF runs: even a wrong passphrase gets the same answer
    with pytest.raises(KeystoreWeakKdf):
        load_keystore(path, "wrong", min_cost=KdfCost.INTERACTIVE)
    assert load_keystore(path, "lång lösenfras här", min_cost=KdfCost.TEST).owner == store.owner
    assert load_keystore(path, "lång lösenfras här").owner == store.owner  # default unchanged


# --- 6. audit data keys shaped like a personnummer ---------------------------------------------
@pytest.mark.parametrize("key", ["19121212-1212", "121212-1212", "191212121212"])
def test_audit_data_refuses_personnummer_shaped_keys(key: str) -> None:
    with pytest.raises(AuditDataForbidden):
        check_audit_data({"by_subject": {key: 1}})
    check_audit_data({"by_unit": {"so-nordost": 1}})


def test_errors_of_this_review_carry_no_values() -> None:
    secret_ref = "ab" * 32
    record = _consent()
    record["subject_ref"] = secret_ref + "\n"
    with pytest.raises(ConsentRecordInvalid) as caught:
        parse_consent_record(record, require_sig=False)
    assert secret_ref not in str(caught.value)
    with pytest.raises(EnvelopeError) as env:
        EnvelopeHeader.from_bytes(
            canonical_json(
                {**make_header((ANNA,), EVA).to_json(), "subject_ref": secret_ref + "\n"}
            )
        )
    assert secret_ref not in str(env.value)
    assert json.dumps(str(env.value))  # printable, one line

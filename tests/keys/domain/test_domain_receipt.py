"""Handover receipts: round trip, tamper evidence, binding to one envelope, schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from domain_factories import NOW, load_schema

from keys.crypto.canonical import b64d, b64e, canonical_json, hash32
from keys.crypto.keypairs import SigningKey
from keys.errors import ReceiptInvalid, ReceiptMismatch, ReceiptSignatureInvalid, SignatureInvalid
from keys.protocol.receipt import FIELDS, SIG_DOMAIN, make_receipt, parse_receipt, verify_receipt

KEY = SigningKey(bytes(range(32)))
OTHER_KEY = SigningKey(bytes(range(1, 33)))
MESSAGE_ID = "5f0c1f6e-8a2b-4c3d-9e4f-a0b1c2d3e4f5"
HH = hash32(b"a header", b"stafett.hdr")
RECIPIENT = "so-nordost/anna/1"
VALIDATOR = jsonschema.Draft202012Validator(load_schema("receipt.json"))


def receipt(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "message_id": MESSAGE_ID,
        "header_hash": HH,
        "recipient": RECIPIENT,
        "status": "accepted",
        "reason": None,
        "received_at": NOW,
        "key": KEY,
    }
    args.update(changes)
    return make_receipt(**args)


def verify(rec: dict[str, Any], **changes: Any) -> Any:
    args: dict[str, Any] = {
        "expected_message_id": MESSAGE_ID,
        "expected_header_hash": HH,
    }
    args.update(changes)
    return verify_receipt(rec, KEY.verify_key, **args)


def test_accepted_receipt_round_trip() -> None:
    rec = receipt()
    parsed = verify(rec, expected_recipients={RECIPIENT})
    assert parsed.is_accepted
    assert parsed.header_hash == HH
    assert str(parsed.recipient) == RECIPIENT
    assert parsed.to_json() == rec
    VALIDATOR.validate(rec)


def test_rejected_receipt_carries_a_reason_code() -> None:
    rec = receipt(status="rejected", reason="wrong_district")
    parsed = verify(rec, expected_header_hash=HH.hex())
    assert not parsed.is_accepted
    assert parsed.reason == "wrong_district"
    VALIDATOR.validate(rec)


def test_signature_covers_the_documented_bytes() -> None:
    rec = receipt()
    unsigned = {k: v for k, v in rec.items() if k != "sig"}
    KEY.verify_key.verify(SIG_DOMAIN + canonical_json(unsigned), b64d(rec["sig"]))


EDITS: dict[str, Any] = {
    "message_id": "5f0c1f6e-8a2b-4c3d-9e4f-a0b1c2d3e4f6",
    "header_hash": "00" * 32,
    "recipient": "so-nordost/anna/2",
    "received_at": NOW + 1,
}


@pytest.mark.parametrize("field", sorted(EDITS))
def test_editing_a_field_breaks_the_signature(field: str) -> None:
    rec = receipt()
    rec[field] = EDITS[field]
    with pytest.raises(ReceiptSignatureInvalid) as info:
        verify(rec, expected_message_id=rec["message_id"], expected_header_hash=rec["header_hash"])
    assert isinstance(info.value, SignatureInvalid)


def test_turning_a_rejection_into_an_acceptance_is_refused() -> None:
    rec = receipt(status="rejected", reason="wrong_district")
    rec["status"], rec["reason"] = "accepted", None
    with pytest.raises(ReceiptSignatureInvalid):
        verify(rec)


def test_changing_the_reason_is_refused() -> None:
    rec = receipt(status="rejected", reason="wrong_district")
    rec["reason"] = "duplicate"
    with pytest.raises(ReceiptSignatureInvalid):
        verify(rec)


def test_every_field_is_covered_by_an_edit_test() -> None:
    assert set(EDITS) | {"v", "status", "reason", "sig"} == set(FIELDS)


def test_version_edit_is_refused() -> None:
    rec = receipt()
    rec["v"] = 2
    with pytest.raises(ReceiptInvalid):
        verify(rec)


def test_flipped_signature_and_wrong_key_are_refused() -> None:
    rec = receipt()
    sig = bytearray(b64d(rec["sig"]))
    sig[0] ^= 0x80
    rec["sig"] = b64e(bytes(sig))
    with pytest.raises(ReceiptSignatureInvalid):
        verify(rec)
    with pytest.raises(ReceiptSignatureInvalid):
        verify_receipt(
            receipt(), OTHER_KEY.verify_key, expected_message_id=MESSAGE_ID, expected_header_hash=HH
        )


def test_a_consent_domain_signature_is_not_a_receipt() -> None:
    rec = receipt()
    unsigned = {k: v for k, v in rec.items() if k != "sig"}
    rec["sig"] = b64e(KEY.sign(b"stafett/v1/consent" + canonical_json(unsigned)))
    with pytest.raises(ReceiptSignatureInvalid):
        verify(rec)


def test_a_receipt_for_another_message_is_refused() -> None:
    with pytest.raises(ReceiptMismatch):
        verify(receipt(), expected_message_id="5f0c1f6e-8a2b-4c3d-9e4f-a0b1c2d3e4f6")


def test_a_receipt_for_another_envelope_with_the_same_id_is_refused() -> None:
    other = hash32(b"another header", b"stafett.hdr")
    with pytest.raises(ReceiptMismatch):
        verify(receipt(), expected_header_hash=other)
    with pytest.raises(ReceiptMismatch):
        verify(receipt(), expected_header_hash=other.hex())
    with pytest.raises(ReceiptMismatch):
        verify(receipt(), expected_header_hash="not hex")


def test_a_receipt_from_a_device_that_was_not_a_recipient_is_refused() -> None:
    with pytest.raises(ReceiptMismatch) as info:
        verify(receipt(), expected_recipients={"so-nordost/bertil/1"})
    assert info.value.code == "receipt_mismatch"


BAD: list[tuple[str, dict[str, Any]]] = [
    ("accepted with reason", {"status": "accepted", "reason": "wrong_district"}),
    ("rejected without reason", {"status": "rejected", "reason": None}),
    ("reason as prose", {"status": "rejected", "reason": "Personen bor i Angered"}),
    ("unknown status", {"status": "maybe"}),
    ("bad message id", {"message_id": "msg-1"}),
    ("bad recipient", {"recipient": "so-nordost/anna"}),
    ("negative time", {"received_at": -1}),
    ("bool time", {"received_at": True}),
]


@pytest.mark.parametrize("changes", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_malformed_receipts_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ReceiptInvalid):
        receipt(**changes)
    obj = {**receipt(), **changes}
    with pytest.raises(ReceiptInvalid):
        parse_receipt(obj)
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(obj)


def test_a_reason_never_reaches_an_error_message() -> None:
    prose = "Personen bor i Angered"
    with pytest.raises(ReceiptInvalid) as info:
        receipt(status="rejected", reason=prose)
    assert prose not in str(info.value)


def test_the_schema_is_valid_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema("receipt.json"))

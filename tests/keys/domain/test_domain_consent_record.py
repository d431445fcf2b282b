"""Signed consent records: round trip, every field tamper-evident, structure, schema."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from domain_factories import (
    EVIDENCE,
    FREE_TEXT_HASH,
    OTHER_SUBJECT,
    SUBJECT,
    draft,
    guardian,
    load_schema,
    oral,
)

from keys.crypto.canonical import b64d, b64e, canonical_json
from keys.crypto.consent_free_text import FreeText
from keys.crypto.keypairs import SigningKey
from keys.errors import ConsentRecordInvalid, ConsentSignatureInvalid, SignatureInvalid
from keys.protocol.consent_record import (
    SIG_DOMAIN,
    UNSIGNED_FIELDS,
    parse_consent_record,
    sign_consent_record,
    verify_consent_record,
)

KEY = SigningKey(bytes(range(32)))
OTHER_KEY = SigningKey(bytes(range(1, 33)))
SCHEMA = load_schema("consent-record.json")
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def signed(**changes: Any) -> dict[str, Any]:
    return sign_consent_record(draft(**changes), KEY)


def test_sign_and_verify_round_trip() -> None:
    rec = signed()
    parsed = verify_consent_record(rec, KEY.verify_key)
    assert parsed.consent_id == rec["consent_id"]
    assert parsed.parties == {"sav", "las-storgoteborg"}
    assert parsed.to_json() == rec
    assert len(b64d(rec["sig"])) == 64


def test_signature_covers_the_documented_bytes() -> None:
    rec = signed()
    unsigned = {k: v for k, v in rec.items() if k != "sig"}
    KEY.verify_key.verify(SIG_DOMAIN + canonical_json(unsigned), b64d(rec["sig"]))


def test_the_returned_record_is_detached_from_the_draft() -> None:
    fields = draft()
    rec = sign_consent_record(fields, KEY)
    fields["pairs"].append({"from": "sav", "to": "so-nordost"})
    verify_consent_record(rec, KEY.verify_key)


# One structurally valid edit per signed field: each must break the signature.
EDITS: dict[str, Any] = {
    "consent_id": "0b7e6a52-2f7c-4d7e-9a51-3c4a2f1d9e02",
    "subject_ref": OTHER_SUBJECT,
    "pairs": [
        {"from": "sav", "to": "las-storgoteborg"},
        {"from": "las-storgoteborg", "to": "sav"},
        {"from": "sav", "to": "so-nordost"},
    ],
    "categories": ["application", "threat_assessment", "report_of_concern"],
    "purposes": ["initial_threat_assessment", "advice"],
    "valid_from": "+1",
    "valid_until": "+86400",
    "form": "oral",
    "evidence_hash": "00" * 32,
    "free_text_hash": "01" * 32,
    "obtained_by": "sav/bertil",
    "obtained_at": "+1",
    "minor": True,
    "guardians": [guardian()],
    "covers_processing": False,
    "recorded_by": "sav/anna/2",
    "created": "+1",
}


def test_every_signed_field_has_an_edit() -> None:
    assert set(EDITS) | {"v"} == set(UNSIGNED_FIELDS)


@pytest.mark.parametrize("field", sorted(EDITS))
def test_editing_any_field_breaks_the_signature(field: str) -> None:
    rec = copy.deepcopy(signed())
    edit = EDITS[field]
    rec[field] = rec[field] + int(edit[1:]) if isinstance(edit, str) and edit[0] == "+" else edit
    parse_consent_record(rec)  # still well-formed: only the signature can catch it
    with pytest.raises(ConsentSignatureInvalid):
        verify_consent_record(rec, KEY.verify_key)


def test_reordering_pairs_breaks_the_signature() -> None:
    rec = signed()
    rec["pairs"] = list(reversed(rec["pairs"]))
    with pytest.raises(ConsentSignatureInvalid):
        verify_consent_record(rec, KEY.verify_key)


def test_version_edit_is_refused() -> None:
    rec = signed()
    rec["v"] = 2
    with pytest.raises(ConsentRecordInvalid):
        verify_consent_record(rec, KEY.verify_key)


def test_a_flipped_signature_bit_is_refused() -> None:
    rec = signed()
    sig = bytearray(b64d(rec["sig"]))
    sig[5] ^= 1
    rec["sig"] = b64e(bytes(sig))
    with pytest.raises(ConsentSignatureInvalid) as info:
        verify_consent_record(rec, KEY.verify_key)
    assert isinstance(info.value, SignatureInvalid)
    assert info.value.code == "consent_signature_invalid"


def test_another_devices_key_is_refused() -> None:
    with pytest.raises(ConsentSignatureInvalid):
        verify_consent_record(signed(), OTHER_KEY.verify_key)


def test_a_signature_from_another_domain_is_refused() -> None:
    # The same key signing the same bytes for a receipt must not make a consent.
    rec = signed()
    unsigned = {k: v for k, v in rec.items() if k != "sig"}
    rec["sig"] = b64e(KEY.sign(b"stafett/v1/rcpt" + canonical_json(unsigned)))
    with pytest.raises(ConsentSignatureInvalid):
        verify_consent_record(rec, KEY.verify_key)


BAD_STRUCTURE: list[tuple[str, dict[str, Any]]] = [
    ("extra field", {"extra": 1}),
    ("v is bool", {"v": True}),
    ("v is float", {"v": 1.0}),
    ("upper-case uuid", {"consent_id": "0B7E6A52-2F7C-4D7E-9A51-3C4A2F1D9E01"}),
    ("not a uuid", {"consent_id": "consent-1"}),
    ("personnummer as subject", {"subject_ref": "199001011234"}),
    ("upper-case subject", {"subject_ref": SUBJECT.upper()}),
    ("pairs not a list", {"pairs": {"from": "sav", "to": "las-a"}}),
    ("pair with extra key", {"pairs": [{"from": "sav", "to": "las-a", "both_ways": True}]}),
    ("pair as list", {"pairs": [["sav", "las-a"]]}),
    ("duplicate pair", {"pairs": [{"from": "sav", "to": "las-a"}] * 2}),
    ("duplicate category", {"categories": ["application", "application"]}),
    ("category not a string", {"categories": [1]}),
    ("valid_from a string", {"valid_from": "1760000000"}),
    ("valid_from negative", {"valid_from": -1}),
    ("valid_until a float", {"valid_until": 1.5e9}),
    ("minor as int", {"minor": 1}),
    ("form unknown", {"form": "implied"}),
    ("form unhashable", {"form": ["written"]}),
    ("evidence short", {"evidence_hash": "ab"}),
    ("free_text_hash short", {"free_text_hash": "ab"}),
    ("clear witness (earlier format)", {"witness": "Bertil"}),
    ("clear note (earlier format)", {"note": "Vid möte"}),
    ("obtained_by a kid", {"obtained_by": "sav/anna/1"}),
    ("recorded_by a device", {"recorded_by": "sav/anna"}),
    ("guardian missing a field", {"guardians": [{"form": "written", "evidence_hash": EVIDENCE}]}),
    ("covers_processing a string", {"covers_processing": "yes"}),
]


@pytest.mark.parametrize(
    "changes", [b[1] for b in BAD_STRUCTURE], ids=[b[0] for b in BAD_STRUCTURE]
)
def test_malformed_records_are_refused_structurally(changes: dict[str, Any]) -> None:
    obj = draft(**changes)
    with pytest.raises(ConsentRecordInvalid):
        sign_consent_record(obj, KEY)
    obj["sig"] = b64e(bytes(64))
    with pytest.raises(ConsentRecordInvalid):
        parse_consent_record(obj)
    if any(isinstance(v, float) for v in changes.values()):
        # JSON Schema counts 1.0 as an integer; canonical JSON (the code) refuses floats.
        return
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(obj)


def test_missing_field_is_refused() -> None:
    rec = signed()
    del rec["free_text_hash"]
    with pytest.raises(ConsentRecordInvalid):
        verify_consent_record(rec, KEY.verify_key)


def test_a_draft_with_a_sig_is_not_signed_again() -> None:
    with pytest.raises(ConsentRecordInvalid):
        sign_consent_record(signed(), KEY)


def test_bad_sig_encoding_is_malformed_not_a_crash() -> None:
    for bad in ("", "!!", b64e(bytes(63)), 7):
        rec = signed()
        rec["sig"] = bad
        with pytest.raises(ConsentRecordInvalid):
            verify_consent_record(rec, KEY.verify_key)


def test_messages_and_repr_do_not_carry_the_pseudonym() -> None:
    bad = "ZZ" + SUBJECT[2:]
    with pytest.raises(ConsentRecordInvalid) as info:
        parse_consent_record(draft(subject_ref=bad), require_sig=False)
    assert bad not in str(info.value)
    with pytest.raises(ConsentRecordInvalid) as info2:
        parse_consent_record(draft(secret_field_named_after_a_person=1), require_sig=False)
    assert "secret_field_named_after_a_person" not in str(info2.value)
    assert SUBJECT not in repr(verify_consent_record(signed(), KEY.verify_key))


# --- JSON Schema ---------------------------------------------------------------------------
def test_the_schema_is_valid_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize(
    "example",
    [
        draft(),
        oral(),
        draft(
            minor=True,
            guardians=[
                guardian(),
                guardian(form="oral", evidence_hash=None, free_text_hash=FREE_TEXT_HASH),
            ],
        ),
        # Not specific, but well-formed: the schema lets policy give the precise code.
        draft(valid_until=None, pairs=[{"from": "sav", "to": "*"}], categories=["all"]),
    ],
    ids=["written", "oral", "minor", "policy-refused-but-well-formed"],
)
def test_signed_examples_validate_against_the_schema(example: dict[str, Any]) -> None:
    rec = sign_consent_record(example, KEY)
    VALIDATOR.validate(rec)
    verify_consent_record(rec, KEY.verify_key)


def test_schema_and_code_agree_on_the_field_set() -> None:
    assert set(SCHEMA["required"]) == set(UNSIGNED_FIELDS) | {"sig"}
    assert set(SCHEMA["properties"]) == set(SCHEMA["required"])


# --- the free text that stays on the recording device ---------------------------------------
def test_free_text_hash_is_salted_split_safe_and_round_trips() -> None:
    salt = bytes(range(32))
    text = FreeText("Bertil", "Vid mote kl 10", salt)
    assert text.digest == FreeText("Bertil", "Vid mote kl 10", salt).digest
    # Another salt, another hash: without the salt nobody can test guesses against it.
    assert text.digest != FreeText("Bertil", "Vid mote kl 10", bytes(32)).digest
    # Moving text between witness and note changes the hash (canonical JSON of both).
    assert text.digest != FreeText("Bertil Vid", "mote kl 10", salt).digest
    again = FreeText.from_json(text.to_json())
    assert again.matches(text.digest)
    assert not FreeText.new("Bertil", "Vid mote kl 10").matches(text.digest)
    assert "Bertil" not in repr(text)
    assert "mote" not in repr(text)
    with pytest.raises(ConsentRecordInvalid):
        FreeText("Bertil", "note", b"short")
    with pytest.raises(ConsentRecordInvalid):
        FreeText("x" * 201, "note", salt)

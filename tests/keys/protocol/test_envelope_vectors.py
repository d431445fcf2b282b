"""Published known-answer vectors and the header JSON Schema.

The vectors are what another implementation checks itself against, so this file
checks them from the outside too: hashes and the signature are recomputed from the
envelope bytes with nothing but the section layout, and every box is opened by the
standard sealed-box open.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from envelope_support import Dissected, seal  # seal: v1 unless told

from keys.crypto.canonical import b64d, canonical_json, hash32
from keys.crypto.keypairs import (
    DeviceKeyPair,
    DevicePublicKeys,
    EncryptionPrivateKey,
    EncryptionPublicKey,
    KeyId,
    SigningKey,
    VerifyKey,
)
from keys.errors import EnvelopeError, EnvelopeHeaderInvalid, EnvelopeSenderUnknown
from keys.protocol.envelope import EnvelopeHeader, open_envelope, verify_envelope
from tests.support.envelope_vectors import render
from tests.support.paths import REPO

SCHEMAS = REPO / "schemas"
VECTORS_PATH = SCHEMAS / "vectors" / "envelope-v1.json"


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    value = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    value = json.loads((SCHEMAS / "envelope-header.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(value)
    assert isinstance(value, dict)
    return value


def _pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def _content(case: dict[str, Any]) -> bytes:
    if "content_hex" in case:
        return bytes.fromhex(case["content_hex"])
    assert case["content_rule"] == "byte i = i mod 251"
    return _pattern(case["content_length"])


def _envelope(case: dict[str, Any], vectors: dict[str, Any]) -> bytes:
    """The envelope bytes: published whole, or re-sealed from the published values."""
    if "envelope_hex" in case:
        return bytes.fromhex(case["envelope_hex"])
    randomness = case["randomness_in_order"]
    draws = iter(
        [
            bytes.fromhex(randomness["content_key_hex"]),
            *(bytes.fromhex(e) for e in randomness["ephemeral_secrets_hex"]),
            bytes.fromhex(randomness["secretstream_header_hex"]),
        ]
    )

    def replay(n: int) -> bytes:
        value = next(draws)
        assert len(value) == n
        return value

    signing = SigningKey(bytes.fromhex(vectors["sender"]["ed25519_seed_hex"]))
    sender = DeviceKeyPair(
        KeyId.parse(vectors["sender"]["kid"]), signing, EncryptionPrivateKey.generate()
    )
    recipients = [
        DevicePublicKeys(
            KeyId.parse(r["kid"]),
            signing.verify_key,  # recipients' signing keys play no part in sealing
            EncryptionPublicKey(bytes.fromhex(r["x25519_public_hex"])),
        )
        for r in case["recipients"]
    ]
    out = io.BytesIO()
    header = EnvelopeHeader.from_json(case["header"])
    seal(header, io.BytesIO(_content(case)), recipients, sender, out, _rng=replay)
    return out.getvalue()


def _resolver(vectors: dict[str, Any]) -> Any:
    sender = vectors["sender"]
    key = VerifyKey(bytes.fromhex(sender["ed25519_public_hex"]))

    def resolve(kid: KeyId) -> VerifyKey:
        if str(kid) != sender["kid"]:
            raise EnvelopeSenderUnknown()
        return key

    return resolve


def test_the_published_file_is_what_the_generator_produces() -> None:
    assert VECTORS_PATH.read_text(encoding="utf-8") == render(), (
        "regenerate: python -m tests.support.envelope_vectors "
        "--write schemas/vectors/envelope-v1.json"
    )


def test_published_keys_match_their_public_halves(vectors: dict[str, Any]) -> None:
    sender = vectors["sender"]
    signing = SigningKey(bytes.fromhex(sender["ed25519_seed_hex"]))
    assert bytes(signing.verify_key).hex() == sender["ed25519_public_hex"]
    for case in vectors["cases"]:
        for r in case["recipients"]:
            private = EncryptionPrivateKey(bytes.fromhex(r["x25519_secret_hex"]))
            assert bytes(private.public_key).hex() == r["x25519_public_hex"]


def test_each_vector_is_consistent_from_the_bytes_alone(vectors: dict[str, Any]) -> None:
    for case in vectors["cases"]:
        data = _envelope(case, vectors)
        assert len(data) == case["envelope_length"]
        assert hashlib.sha256(data).hexdigest() == case["envelope_sha256_hex"]
        parsed = Dissected.parse(data)
        assert parsed.header.hex() == case["header_canonical_hex"]
        assert parsed.header == canonical_json(case["header"])
        h_h = hash32(parsed.header, b"stafett.hdr")
        h_w = hash32(parsed.wrapped, b"stafett.wrap")
        h_b = hash32(parsed.body(), b"stafett.body")
        assert (h_h.hex(), h_w.hex(), h_b.hex()) == (case["hH_hex"], case["hW_hex"], case["hB_hex"])
        assert parsed.ss_header.hex() == case["randomness_in_order"]["secretstream_header_hex"]
        assert sum(len(c) - 17 for c in parsed.chunks) == case["padded_length"]
        key = VerifyKey(bytes.fromhex(vectors["sender"]["ed25519_public_hex"]))
        key.verify(b"stafett/v1/sig" + h_h + h_w + h_b, parsed.signature)
        # Each box is an ordinary sealed box: it opens with crypto_box_seal_open and
        # holds hH ‖ K with K the published content key.
        secrets = {r["kid"]: r["x25519_secret_hex"] for r in case["recipients"]}
        content_key = bytes.fromhex(case["randomness_in_order"]["content_key_hex"])
        for entry, esk in zip(
            parsed.boxes(), case["randomness_in_order"]["ephemeral_secrets_hex"], strict=True
        ):
            private = EncryptionPrivateKey(bytes.fromhex(secrets[entry["kid"]]))
            box = b64d(entry["box"])
            assert private.unseal(box) == h_h + content_key
            # the box starts with the public half of the published ephemeral secret
            assert box[:32] == bytes(EncryptionPrivateKey(bytes.fromhex(esk)).public_key)


def test_each_vector_opens_for_every_recipient(vectors: dict[str, Any], tmp_path: Path) -> None:
    resolve = _resolver(vectors)
    for case in vectors["cases"]:
        src = tmp_path / f"{case['name']}.stf"
        src.write_bytes(_envelope(case, vectors))
        for r in case["recipients"]:
            device = DeviceKeyPair(
                KeyId.parse(r["kid"]),
                SigningKey.generate(),  # not used to open
                EncryptionPrivateKey(bytes.fromhex(r["x25519_secret_hex"])),
            )
            dest = tmp_path / "out"
            opened = open_envelope(src, device, resolve, dest)
            assert dest.read_bytes() == _content(case)
            assert opened.header.to_json() == case["header"]


def _mutate(data: bytes, op: dict[str, Any]) -> bytes:
    if op["op"] == "append":
        return data + bytes.fromhex(op["bytes_hex"])
    if op["op"] == "truncate":
        return data[: op["length"]]
    if op["op"] == "xor":
        i = op["offset"]
        return data[:i] + bytes([data[i] ^ op["mask"]]) + data[i + 1 :]
    assert op["op"] == "replace_header_text"
    old, new = op["old"].encode(), op["new"].encode()
    (hlen,) = struct.unpack(">I", data[8:12])
    header = data[12 : 12 + hlen]
    assert header.count(old) == 1
    assert len(old) == len(new)
    return data[:12] + header.replace(old, new) + data[12 + hlen :]


def test_published_refusals_give_the_published_codes(vectors: dict[str, Any]) -> None:
    refusals = vectors["refusals"]
    (base,) = [c for c in vectors["cases"] if c["name"] == refusals["base"]]
    data = _envelope(base, vectors)
    for op in refusals["cases"]:
        with pytest.raises(EnvelopeError) as caught:
            verify_envelope(io.BytesIO(_mutate(data, op)), _resolver(vectors))
        assert caught.value.code == op["expect"], op


# --- JSON Schema --------------------------------------------------------------------------
def test_vector_headers_validate_against_the_schema(
    vectors: dict[str, Any], schema: dict[str, Any]
) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    for case in vectors["cases"]:
        validator.validate(case["header"])


def _bad_headers(good: dict[str, Any]) -> list[dict[str, Any]]:
    def changed(**kv: Any) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(json.dumps(good))
        value.update(kv)
        return value

    without = json.loads(json.dumps(good))
    del without["consent_id"]
    return [
        without,
        changed(extra="x"),
        changed(v=2),
        changed(message_id="5B0D8F7E-3C1A-4E2B-9F6D-0A1B2C3D4E5F"),
        changed(sender="sav/eva/0"),
        changed(sender="sav/eva"),
        changed(recipient_unit="SO-Nordost"),
        changed(recipients=[]),
        changed(recipients=["so-nordost/vector-a/1", "so-nordost/vector-a/1"]),
        changed(recipients="so-nordost/vector-a/1"),
        changed(subject_ref="19800101-1234"),
        changed(category="Case Transfer"),
        changed(purpose=""),
        changed(created=-1),
        changed(created=1.5),
        changed(expires="2026-01-15"),
        changed(body={"chunk": 4096, "pad": "padme"}),
        changed(body={"chunk": 65536, "pad": "none"}),
        changed(checkpoint={"size": 0, "head": "00" * 32}),
        changed(checkpoint={"size": 3, "head": "00" * 32, "sig": "x"}),
        changed(in_reply_to="yesterday"),
        changed(consent_id=""),
    ]


def test_schema_and_code_refuse_the_same_malformed_headers(
    vectors: dict[str, Any], schema: dict[str, Any]
) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    good = vectors["cases"][0]["header"]
    validator.validate(good)
    EnvelopeHeader.from_json(good)
    for bad in _bad_headers(good):
        assert not validator.is_valid(bad), bad
        with pytest.raises(EnvelopeHeaderInvalid):
            EnvelopeHeader.from_json(bad)


def test_cross_field_rules_live_in_code(vectors: dict[str, Any], schema: dict[str, Any]) -> None:
    # These pass the schema (it cannot compare fields) and are refused by the code,
    # as the schema's description says.
    validator = jsonschema.Draft202012Validator(schema)
    good = vectors["cases"][0]["header"]
    for bad in (
        {**good, "recipients": ["so-centrum/x/1"]},  # a device of another unit
        {**good, "expires": good["created"]},
        {**good, "recipients": ["so-nordost/b/1", "so-nordost/a/1"]},  # unsorted
    ):
        assert validator.is_valid(bad)
        with pytest.raises(EnvelopeHeaderInvalid):
            EnvelopeHeader.from_json(bad)

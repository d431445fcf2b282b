"""The published envelope v2 vectors: byte-exact, and reproducible from docs/protocol.md.

``test_a_second_implementation_reproduces_every_vector`` builds each envelope from the
published values with nothing but hashlib and libsodium's public functions, the way a
second implementation written from docs/protocol.md would (BLAKE2b personalisations
zero-padded to 16 bytes; the fixed secretstream header through ``init_pull``), and
must arrive at the published bytes.
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
from nacl.bindings import (
    crypto_box,
    crypto_scalarmult_base,
    crypto_secretstream_xchacha20poly1305_init_pull,
    crypto_secretstream_xchacha20poly1305_push,
    crypto_secretstream_xchacha20poly1305_state,
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)
from nacl.signing import SigningKey as NaclSigningKey

from keys.crypto.canonical import b64e, canonical_json
from keys.crypto.keypairs import DeviceKeyPair, EncryptionPrivateKey, KeyId, SigningKey, VerifyKey
from keys.errors import EnvelopeError, EnvelopeSenderUnknown
from keys.protocol.envelope import open_envelope, verify_envelope
from tests.support.envelope_v2_vectors import render
from tests.support.paths import REPO

SCHEMAS = REPO / "schemas"
VECTORS_PATH = SCHEMAS / "vectors" / "envelope-v2.json"
V1_PATH = SCHEMAS / "vectors" / "envelope-v1.json"


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    value = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


def _content(case: dict[str, Any]) -> bytes:
    if "content_hex" in case:
        return bytes.fromhex(case["content_hex"])
    assert case["content_rule"] == "byte i = i mod 251"
    return bytes(i % 251 for i in range(case["content_length"]))


def _b2(data: bytes, person: bytes, size: int = 32) -> bytes:
    # hashlib zero-pads the personalisation to 16 bytes, as libsodium's generichash does.
    return hashlib.blake2b(data, digest_size=size, person=person).digest()


def _padme(n: int) -> int:
    """docs/protocol.md: P = Padmé(len + 8)."""
    length = n + 8
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


def _second_implementation(case: dict[str, Any], vectors: dict[str, Any]) -> bytes:
    """Envelope v2 from the published values, following docs/protocol.md only."""
    rnd = case["randomness_in_order"]
    k = bytes.fromhex(rnd["content_key_hex"])
    header = dict(case["header"])
    assert header["key_commitment"] == _b2(k, b"stafett.kcommit").hex()
    h_bytes = canonical_json(header)
    h_h = _b2(h_bytes, b"stafett.hdr")
    boxes = []
    for r, esk_hex in zip(case["recipients"], rnd["ephemeral_secrets_hex"], strict=True):
        pk, esk = bytes.fromhex(r["x25519_public_hex"]), bytes.fromhex(esk_hex)
        epk = crypto_scalarmult_base(esk)
        nonce = hashlib.blake2b(epk + pk, digest_size=24).digest()
        boxes.append({"box": b64e(epk + crypto_box(h_h + k, nonce, pk, esk)), "kid": r["kid"]})
    w = canonical_json(sorted(boxes, key=lambda b: b["kid"]))
    content = _content(case)
    total = _padme(len(content))
    plain = content + bytes(total - len(content) - 8) + struct.pack("<Q", len(content))
    state = crypto_secretstream_xchacha20poly1305_state()
    ss_hdr = bytes.fromhex(rnd["secretstream_header_hex"])
    crypto_secretstream_xchacha20poly1305_init_pull(state, ss_hdr, k)  # fixed header
    body = bytearray(ss_hdr)
    pieces = [plain[i : i + 65536] for i in range(0, len(plain), 65536)]
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        tag = (
            crypto_secretstream_xchacha20poly1305_TAG_FINAL
            if last
            else crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
        )
        c = crypto_secretstream_xchacha20poly1305_push(state, piece, h_h, tag)
        body += struct.pack(">I", len(c)) + c
    body += bytes(4)
    h_w = _b2(w, b"stafett.wrap")
    h_b = hashlib.sha256(b"stafett/v2/body" + bytes(body)).digest()
    assert (h_h.hex(), h_w.hex(), h_b.hex()) == (case["hH_hex"], case["hW_hex"], case["hB_hex"])
    seed = bytes.fromhex(vectors["sender"]["ed25519_seed_hex"])
    sig = NaclSigningKey(seed).sign(b"stafett/v2/sig" + h_h + h_w + h_b).signature
    return b"".join(
        (
            b"STAFETT\x02",
            struct.pack(">I", len(h_bytes)),
            h_bytes,
            struct.pack(">I", len(w)),
            w,
            bytes(body),
            sig,
        )
    )


def _resolver(vectors: dict[str, Any]) -> Any:
    key = VerifyKey(bytes.fromhex(vectors["sender"]["ed25519_public_hex"]))

    def resolve(kid: KeyId) -> VerifyKey:
        if str(kid) != vectors["sender"]["kid"]:
            raise EnvelopeSenderUnknown()
        return key

    return resolve


def test_the_published_file_is_what_the_generator_produces() -> None:
    assert VECTORS_PATH.read_text(encoding="utf-8") == render(), (
        "regenerate: python -m tests.support.envelope_v2_vectors "
        "--write schemas/vectors/envelope-v2.json"
    )


def test_the_v1_vectors_are_unchanged() -> None:
    # v1 envelopes may still be pending: their published bytes must never move.
    digest = hashlib.sha256(V1_PATH.read_bytes()).hexdigest()
    assert digest == "a3910be81814b63e2d728841cb646b95c1dfd21091077e4c7dcbe010432579db"


def test_a_second_implementation_reproduces_every_vector(vectors: dict[str, Any]) -> None:
    assert len(vectors["cases"]) == 5
    for case in vectors["cases"]:
        data = _second_implementation(case, vectors)
        assert len(data) == case["envelope_length"]
        assert hashlib.sha256(data).hexdigest() == case["envelope_sha256_hex"], case["name"]
        if "envelope_hex" in case:
            assert data.hex() == case["envelope_hex"]
        assert data[-64:].hex() == case["signature_hex"]


def test_each_vector_opens_for_every_recipient(vectors: dict[str, Any], tmp_path: Path) -> None:
    for case in vectors["cases"]:
        src = tmp_path / "in.stf"
        src.write_bytes(_second_implementation(case, vectors))
        for r in case["recipients"]:
            device = DeviceKeyPair(
                KeyId.parse(r["kid"]),
                SigningKey.generate(),
                EncryptionPrivateKey(bytes.fromhex(r["x25519_secret_hex"])),
            )
            opened = open_envelope(src, device, _resolver(vectors), tmp_path / "out")
            assert (tmp_path / "out").read_bytes() == _content(case)
            assert opened.header.to_json() == case["header"]


def test_published_refusals_give_the_published_codes(vectors: dict[str, Any]) -> None:
    refusals = vectors["refusals"]
    (base,) = [c for c in vectors["cases"] if c["name"] == refusals["base"]]
    data = _second_implementation(base, vectors)
    for op in refusals["cases"]:
        mutated = data
        if op["op"] == "append":
            mutated = data + bytes.fromhex(op["bytes_hex"])
        elif op["op"] == "truncate":
            mutated = data[: op["length"]]
        elif op["op"] == "xor":
            i = op["offset"]
            mutated = data[:i] + bytes([data[i] ^ op["mask"]]) + data[i + 1 :]
        else:
            old, new = op["old"].encode(), op["new"].encode()
            assert data.count(old) == 1
            mutated = data.replace(old, new)
        with pytest.raises(EnvelopeError) as caught:
            verify_envelope(io.BytesIO(mutated), _resolver(vectors))
        assert caught.value.code == op["expect"], op


def test_vector_headers_validate_against_the_schema(vectors: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "envelope-header.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    for case in vectors["cases"]:
        validator.validate(case["header"])
        without = {k: v for k, v in case["header"].items() if k != "key_commitment"}
        assert not validator.is_valid(without)  # v2 without its commitment

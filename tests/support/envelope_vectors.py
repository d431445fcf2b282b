"""Published envelope v1 test vectors: fixed keys + fixed randomness → exact bytes.

Another implementation can reproduce ``schemas/vectors/envelope-v1.json`` byte for
byte: every random value ``seal`` draws is listed in the order it is drawn
(content key, one ephemeral X25519 secret per recipient in kid order, secretstream
header). Sealed boxes use crypto_box_seal's own construction with that ephemeral
secret (``epk ‖ crypto_box(hH ‖ K, nonce = BLAKE2b-192(epk ‖ pk), pk, esk)``), so a
standard ``crypto_box_seal_open`` opens them. These keys are public: test use only.

Regenerate: ``python -m tests.support.envelope_vectors --write schemas/vectors/envelope-v1.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections.abc import Callable
from typing import Any

from keys.crypto.keypairs import DeviceKeyPair, EncryptionPrivateKey, KeyId, SigningKey
from keys.protocol.envelope import seal
from keys.protocol.envelope_header import EnvelopeHeader

_INLINE_LIMIT = 4096  # envelopes up to this size are published whole, larger by hash


def _derive(label: str, n: int) -> bytes:
    return hashlib.shake_256(b"stafett/v1/vectors/" + label.encode()).digest(n)


class _RecordingRng:
    """SHAKE256 stream per vector, remembering every draw so the JSON can list it."""

    def __init__(self, label: str) -> None:
        self._stream = hashlib.shake_256(b"stafett/v1/vectors/rng/" + label.encode())
        self._used = 0
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        data = self._stream.digest(self._used + n)[self._used :]
        self._used += n
        self.draws.append(data)
        return data


def _device(kid: str) -> DeviceKeyPair:
    return DeviceKeyPair(
        KeyId.parse(kid),
        SigningKey(_derive(f"ed25519/{kid}", 32)),
        EncryptionPrivateKey(_derive(f"x25519/{kid}", 32)),
    )


SENDER = "sav/vector-sender/1"
RECIPIENTS = ("so-nordost/vector-a/1", "so-nordost/vector-b/2", "so-nordost/vector-c/1")


def _pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


_CASES: tuple[tuple[str, bytes, int], ...] = (
    ("empty", b"", 1),
    ("short_text", "Överlämning enligt samtycke: möte tisdag 10.00.".encode(), 2),
    ("two_kib_three_recipients", _pattern(2048), 3),
    ("one_full_chunk", _pattern(65528), 1),  # P = 65536 exactly: one FINAL chunk
    ("three_chunks", _pattern(150_000), 2),
)


def _header(name: str, recipients: tuple[str, ...]) -> EnvelopeHeader:
    uid = _derive(f"uuid/{name}", 16).hex()
    return EnvelopeHeader(
        message_id=f"{uid[:8]}-{uid[8:12]}-4{uid[13:16]}-8{uid[17:20]}-{uid[20:32]}",
        sender=KeyId.parse(SENDER),
        recipient_unit="so-nordost",
        recipients=tuple(KeyId.parse(r) for r in recipients),
        consent_id="consent-0001",
        subject_ref=_derive(f"subject/{name}", 32).hex(),
        category="case_transfer",
        purpose="transfer_to_district",
        created=1_767_225_600,  # 2026-01-01T00:00:00Z
        expires=1_767_225_600 + 14 * 86400,
        checkpoint_size=7,
        checkpoint_head=_derive("checkpoint", 32).hex(),
        in_reply_to=None,
    )


def _case(name: str, content: bytes, n_recipients: int, version: int = 1) -> dict[str, Any]:
    sender = _device(SENDER)
    devices = [_device(kid) for kid in RECIPIENTS[:n_recipients]]
    rng = _RecordingRng(name if version == 1 else f"v{version}/{name}")
    out = io.BytesIO()
    result = seal(
        _header(name, RECIPIENTS[:n_recipients]),
        io.BytesIO(content),
        [d.public() for d in devices],
        sender,
        out,
        version=version,
        _rng=rng,
    )
    header = result.header  # as sealed (v2: with the key commitment)
    envelope = out.getvalue()
    case: dict[str, Any] = {
        "name": name,
        "header": header.to_json(),
        "header_canonical_hex": header.canonical().hex(),
        "recipients": [
            {
                "kid": str(d.kid),
                "x25519_secret_hex": d.encryption_key.secret_bytes().hex(),
                "x25519_public_hex": bytes(d.encryption_key.public_key).hex(),
            }
            for d in devices
        ],
        "randomness_in_order": {
            "content_key_hex": rng.draws[0].hex(),
            "ephemeral_secrets_hex": [d.hex() for d in rng.draws[1:-1]],
            "secretstream_header_hex": rng.draws[-1].hex(),
        },
        "content_length": len(content),
        "padded_length": result.padded_length,
        "hH_hex": result.header_hash.hex(),
        "hW_hex": result.wrapped_keys_hash.hex(),
        "hB_hex": result.body_hash.hex(),
        "signature_hex": envelope[-64:].hex(),
        "envelope_length": len(envelope),
        "envelope_sha256_hex": hashlib.sha256(envelope).hexdigest(),
    }
    if len(content) <= _INLINE_LIMIT:
        case["content_hex"] = content.hex()
    else:
        case["content_rule"] = "byte i = i mod 251"
    if len(envelope) <= _INLINE_LIMIT:
        case["envelope_hex"] = envelope.hex()
    return case


def _refusals(short: dict[str, Any]) -> list[dict[str, Any]]:
    """Mutations of the ``short_text`` envelope and the error code a reader must give."""
    hlen = len(short["header_canonical_hex"]) // 2
    size = short["envelope_length"]
    return [
        {"op": "append", "bytes_hex": "00", "expect": "trailing_data"},
        {"op": "truncate", "length": size - 1, "expect": "body_truncated"},
        {"op": "xor", "offset": size - 1, "mask": 1, "expect": "envelope_signature_invalid"},
        {"op": "xor", "offset": 0, "mask": 1, "expect": "envelope_malformed"},
        # a byte inside the header's JSON: still canonical JSON, but not what was signed
        # ("consent-0001" → "consent-0000")
        {
            "op": "replace_header_text",
            "old": "consent-0001",
            "new": "consent-0000",
            "expect": "envelope_signature_invalid",
        },
        {"op": "xor", "offset": 12 + hlen // 2, "mask": 0x80, "expect": "envelope_header_invalid"},
    ]


def generate() -> dict[str, Any]:
    cases = [_case(name, content, n) for name, content, n in _CASES]
    return {
        "$comment": (
            "Envelope v1 known-answer vectors (docs/protocol.md). Keys and randomness are "
            "public test values. Regenerate with `python -m keys.envelope_vectors --write "
            "schemas/vectors/envelope-v1.json`; tests/keys/test_envelope_vectors.py "
            "checks the file matches."
        ),
        "v": 1,
        **common_fields(cases),
    }


def common_fields(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """What every version's vector file states the same way: the sender, the order in
    which ``seal`` draws its randomness, the cases and the refusals built on case 1."""
    sender = _device(SENDER)
    return {
        "sender": {
            "kid": SENDER,
            "ed25519_seed_hex": sender.signing_key.seed().hex(),
            "ed25519_public_hex": bytes(sender.signing_key.verify_key).hex(),
        },
        "randomness": (
            "seal draws, in order: content key K (32), for each recipient in kid order "
            "an ephemeral X25519 secret (32), then the secretstream header (24)"
        ),
        "cases": cases,
        "refusals": {"base": "short_text", "cases": _refusals(cases[1])},
    }


def to_text(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def run_cli(generate: Callable[[], dict[str, Any]], doc: str | None, argv: list[str] | None) -> int:
    """``--write PATH`` or stdout: the generator's command line, for each version."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--write", metavar="PATH", help="write the vectors to PATH")
    args = parser.parse_args(argv)
    text = to_text(generate())
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def render() -> str:
    return to_text(generate())


def main(argv: list[str] | None = None) -> int:
    return run_cli(generate, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())

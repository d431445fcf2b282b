"""Published envelope v2 test vectors: fixed keys + fixed randomness → exact bytes.

The same parties, headers and contents as the v1 vectors (``envelope_vectors``), sealed
as v2 with their own randomness stream. Every random value ``seal`` draws is listed in
the order it is drawn: content key ``K`` (32), for each recipient in kid order an
ephemeral X25519 secret (32), then the secretstream header (24). Another implementation
reproduces ``schemas/vectors/envelope-v2.json`` byte for byte from docs/protocol.md
("Envelope v2", "Reproducing a vector"). These keys are public: test use only.

Regenerate:
``python -m tests.support.envelope_v2_vectors --write schemas/vectors/envelope-v2.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from keys.crypto.envelope_v2_stream import BODY_PREFIX, COMMIT_PERSON
from tests.support.envelope_vectors import _CASES, SENDER, _case, _device, _refusals


def generate() -> dict[str, Any]:
    cases = []
    for name, content, n in _CASES:
        case = _case(name, content, n, version=2)
        case["key_commitment_hex"] = case["header"]["key_commitment"]
        cases.append(case)
    sender = _device(SENDER)
    return {
        "$comment": (
            "Envelope v2 known-answer vectors (docs/protocol.md, 'Envelope v2'). Keys and "
            "randomness are public test values. Regenerate with `python -m "
            "tests.support.envelope_v2_vectors --write schemas/vectors/envelope-v2.json`; "
            "tests/keys/test_envelope_v2_vectors.py checks the file matches."
        ),
        "v": 2,
        "parameters": {
            "magic_hex": b"STAFETT\x02".hex(),
            "hH": "BLAKE2b-256(H, key=none, salt=16 zero bytes, person='stafett.hdr' "
            "zero-padded to 16 bytes)",
            "hW": "BLAKE2b-256(W, person='stafett.wrap' zero-padded to 16 bytes)",
            "hB": f"SHA-256('{BODY_PREFIX.decode()}' || ss_hdr || chunk frames || end sentinel)",
            "key_commitment": f"BLAKE2b-256(K, person='{COMMIT_PERSON.decode()}' zero-padded "
            "to 16 bytes), lower-case hex in H",
            "signature": "Ed25519(sender, 'stafett/v2/sig' || hH || hW || hB)",
            "box": "crypto_box_seal(recipient X25519 public key, hH || K); with the listed "
            "ephemeral secret esk: epk || crypto_box(hH || K, nonce = BLAKE2b-192(epk || pk), "
            "pk, esk)",
            "secretstream": "crypto_secretstream_xchacha20poly1305, ad = hH for every chunk; "
            "with the listed stream header the state is init_pull(header, K)",
        },
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


def render() -> str:
    return json.dumps(generate(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", metavar="PATH", help="write the vectors to PATH")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

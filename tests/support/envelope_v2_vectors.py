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

from typing import Any

from keys.crypto.envelope_v2_stream import BODY_PREFIX, COMMIT_PERSON
from tests.support.envelope_vectors import _CASES, _case, common_fields, run_cli, to_text


def generate() -> dict[str, Any]:
    cases = []
    for name, content, n in _CASES:
        case = _case(name, content, n, version=2)
        case["key_commitment_hex"] = case["header"]["key_commitment"]
        cases.append(case)
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
        **common_fields(cases),
    }


def render() -> str:
    return to_text(generate())


def main(argv: list[str] | None = None) -> int:
    return run_cli(generate, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""TEST ONLY — builds deliberately malformed *v2* envelopes. Never import outside ``tests/``.

The v2 counterpart of ``envelope_testing._build_envelope_for_tests``: arbitrary
plaintext chunks with arbitrary tags under a content key the test chooses, a header
committing to whichever key the test says, wrapped keys that may give each recipient
a *different* key, all signed with the sender's real key — what a malicious (or buggy)
sender could produce. A chosen key also lets a test play a malicious co-recipient.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

from keys.crypto.canonical import hash32
from keys.crypto.envelope_v2_stream import Push, body_hash, key_commitment
from keys.crypto.keypairs import DeviceKeyPair, DevicePublicKeys
from keys.protocol.envelope_format import (
    END,
    MAGIC_V2,
    encode_wrapped,
    frame_length,
    signed_message,
)
from keys.protocol.envelope_header import EnvelopeHeader


def build_v2_envelope_for_tests(
    header: EnvelopeHeader,
    chunks: Sequence[tuple[bytes, int]],
    recipients: Sequence[DevicePublicKeys],
    sender: DeviceKeyPair,
    *,
    key: bytes | None = None,
    committed_key: bytes | None = None,
    key_for: Mapping[str, bytes] | None = None,
) -> bytes:
    """A complete, validly *signed* v2 envelope whose body holds exactly ``chunks``.

    ``key`` encrypts the body (fresh if omitted); the header commits to
    ``committed_key`` (default ``key``); recipient ``kid`` gets ``key_for[kid]`` in its
    box (default ``key``). Boxes are real sealed boxes of ``hH ‖ K``.
    """
    content_key = key if key is not None else os.urandom(32)
    commitment = key_commitment(committed_key if committed_key is not None else content_key)
    header = dataclasses.replace(header, key_commitment=commitment.hex())
    header_bytes = header.canonical()
    h_h = hash32(header_bytes, b"stafett.hdr")
    by_kid = {str(r.kid): r for r in recipients}
    given = key_for or {}
    wrapped = encode_wrapped(
        [
            (kid, by_kid[str(kid)].encryption_key.seal(h_h + given.get(str(kid), content_key)))
            for kid in header.recipients
        ]
    )
    stream = Push(content_key)
    body = bytearray(stream.header)
    for plain, tag in chunks:
        cipher = stream.push(plain, h_h, tag)
        body += frame_length(len(cipher)) + cipher
    body += END
    h_w = hash32(wrapped, b"stafett.wrap")
    signature = sender.signing_key.sign(signed_message(h_h, h_w, body_hash(bytes(body)), 2))
    return b"".join(
        (
            MAGIC_V2,
            frame_length(len(header_bytes)),
            header_bytes,
            frame_length(len(wrapped)),
            wrapped,
            bytes(body),
            signature,
        )
    )

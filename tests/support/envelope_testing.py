"""TEST ONLY — builds deliberately malformed envelopes. Never import outside ``tests/``.

``seal`` can only produce well-formed bodies, so the recipient's inner checks (zero
padding, a consistent length trailer, FINAL exactly on the last chunk, no stray
secretstream tags) cannot be reached through it: the signature would always fail
first. ``_build_envelope_for_tests`` encrypts *arbitrary* plaintext chunks with
*arbitrary* tags under a content key the test may choose, and signs the result with
the sender's real key, as a malicious (or buggy) sender could. A chosen key also lets a
test play a malicious co-recipient, who knows ``K`` and can re-encrypt a body.

Not exported from ``keys`` and not used by any production module (the tests check
that); it lives here only because only ``keys/`` may call libsodium.
"""

from __future__ import annotations

from collections.abc import Sequence

from nacl.bindings import (
    crypto_secretstream_xchacha20poly1305_keygen,
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
    crypto_secretstream_xchacha20poly1305_TAG_PUSH,
    crypto_secretstream_xchacha20poly1305_TAG_REKEY,
)

from keys.crypto.canonical import hash32
from keys.crypto.envelope_stream import ABYTES, SecretStreamPush
from keys.crypto.keypairs import DeviceKeyPair, DevicePublicKeys
from keys.protocol.envelope_format import END, MAGIC, encode_wrapped, frame_length, signed_message
from keys.protocol.envelope_header import EnvelopeHeader

TAG_MESSAGE: int = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL: int = crypto_secretstream_xchacha20poly1305_TAG_FINAL
TAG_PUSH: int = crypto_secretstream_xchacha20poly1305_TAG_PUSH
TAG_REKEY: int = crypto_secretstream_xchacha20poly1305_TAG_REKEY


def _new_content_key_for_tests() -> bytes:
    return crypto_secretstream_xchacha20poly1305_keygen()


def _build_envelope_for_tests(
    header: EnvelopeHeader,
    chunks: Sequence[tuple[bytes, int]],
    recipients: Sequence[DevicePublicKeys],
    sender: DeviceKeyPair,
    *,
    key: bytes | None = None,
) -> bytes:
    """A complete, validly *signed* envelope whose body holds exactly ``chunks``.

    Each ``(plaintext, tag)`` becomes one frame, pushed with ``ad = hH``; nothing about
    padding, chunk sizes or tags is checked. ``key`` is the content key ``K`` (fresh if
    omitted). Boxes are real sealed boxes of ``hH ‖ K`` to ``recipients``.
    """
    header_bytes = header.canonical()
    h_h = hash32(header_bytes, b"stafett.hdr")
    content_key = key if key is not None else _new_content_key_for_tests()
    by_kid = {str(r.kid): r for r in recipients}
    wrapped = encode_wrapped(
        [
            (kid, by_kid[str(kid)].encryption_key.seal(h_h + content_key))
            for kid in header.recipients
        ]
    )
    stream = SecretStreamPush(content_key)
    body = bytearray(stream.header)
    for plain, tag in chunks:
        frame = bytearray(len(plain) + ABYTES)
        stream.push_into(frame, 0, plain, h_h, tag)
        body += frame_length(len(frame)) + frame
    body += END
    h_w = hash32(wrapped, b"stafett.wrap")
    h_b = hash32(bytes(body), b"stafett.body")
    signature = sender.signing_key.sign(signed_message(h_h, h_w, h_b))
    return b"".join(
        (
            MAGIC,
            frame_length(len(header_bytes)),
            header_bytes,
            frame_length(len(wrapped)),
            wrapped,
            bytes(body),
            signature,
        )
    )

"""The libsodium primitives the protocol layer calls directly, behind the crypto door.

Only ``keys/crypto/`` imports ``nacl`` (docs/architecture.md): the envelope modules in
``keys/protocol/`` take these names from here, so the layer test can tell a deliberate
use of a primitive from a new, unreviewed nacl import somewhere above.
"""

from __future__ import annotations

from nacl.bindings import (
    crypto_box,
    crypto_scalarmult_base,
    crypto_secretstream_xchacha20poly1305_keygen,
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)

__all__ = [
    "crypto_box",
    "crypto_scalarmult_base",
    "crypto_secretstream_xchacha20poly1305_TAG_FINAL",
    "crypto_secretstream_xchacha20poly1305_TAG_MESSAGE",
    "crypto_secretstream_xchacha20poly1305_keygen",
]

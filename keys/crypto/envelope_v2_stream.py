"""Envelope v2's primitives, through PyNaCl's *public* bindings only.

v1's hot path calls libsodium through PyNaCl's private cffi module (``nacl._sodium``)
to skip the copy the public wrappers make of every 64 KiB chunk; that ties Stafett to
PyNaCl internals (pinned below 2). v2 does not: ``crypto_secretstream_*`` from
``nacl.bindings`` (one copy per chunk in each direction, ≈ 0.1 s per GiB — measured in
docs/benchmarks.md) and SHA-256 from ``hashlib`` (OpenSSL; SHA-NI where the CPU has it).

- ``hB`` (v2) = SHA-256(``BODY_PREFIX`` ‖ body section as framed on the wire);
- key commitment = BLAKE2b-256(K, personalisation ``stafett.kcommit``, zero-padded to
  16 bytes, no key, no salt) — ``keys.crypto.canonical.hash32``.
"""

from __future__ import annotations

import hashlib

import nacl.exceptions
from nacl.bindings import (
    crypto_secretstream_xchacha20poly1305_ABYTES,
    crypto_secretstream_xchacha20poly1305_HEADERBYTES,
    crypto_secretstream_xchacha20poly1305_init_pull,
    crypto_secretstream_xchacha20poly1305_init_push,
    crypto_secretstream_xchacha20poly1305_KEYBYTES,
    crypto_secretstream_xchacha20poly1305_pull,
    crypto_secretstream_xchacha20poly1305_push,
    crypto_secretstream_xchacha20poly1305_state,
)

from keys.crypto.canonical import hash32
from keys.crypto.hash_thread import IncrementalHash, ThreadedHasher
from keys.errors import EnvelopeBodyInvalid

ABYTES: int = crypto_secretstream_xchacha20poly1305_ABYTES
HEADERBYTES: int = crypto_secretstream_xchacha20poly1305_HEADERBYTES
KEYBYTES: int = crypto_secretstream_xchacha20poly1305_KEYBYTES
BODY_PREFIX = b"stafett/v2/body"  # hashed before the body: no other SHA-256 use collides
COMMIT_PERSON = b"stafett.kcommit"


def body_hash_state() -> IncrementalHash:
    """The v2 body hash, fed on the caller's thread."""
    return hashlib.sha256(BODY_PREFIX)


def body_hasher() -> ThreadedHasher:
    """The v2 body hash, computed on a worker thread (hashlib releases the GIL)."""
    return ThreadedHasher(body_hash_state())


def body_hash(body_section: bytes) -> bytes:
    """``hB`` of a whole body section in memory (tests, vectors)."""
    return hashlib.sha256(BODY_PREFIX + body_section).digest()


def key_commitment(key: bytes) -> bytes:
    """The 32-byte commitment to the content key ``K`` that v2 puts into the header.

    Threat: XChaCha20-Poly1305 is not key-committing, so one ciphertext could be made to
    authenticate under two keys. The commitment in the signed header pins the one key
    every recipient must have unwrapped (BLAKE2b's collision resistance).
    """
    if len(key) != KEYBYTES:
        raise ValueError("content key must be 32 bytes")
    return hash32(key, COMMIT_PERSON)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEYBYTES:
        raise ValueError("secretstream key must be 32 bytes")


class Push:
    """Secretstream encryption, one chunk at a time (public PyNaCl wrappers)."""

    __slots__ = ("_state", "header")

    def __init__(self, key: bytes, header: bytes | None = None) -> None:
        """A fresh random stream header, or (published test vectors only) a chosen one."""
        _check_key(key)
        self._state = crypto_secretstream_xchacha20poly1305_state()
        if header is None:
            self.header: bytes = crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
        else:
            # init_pull derives exactly the state init_push derives from a header it
            # drew at random; with a chosen header it is a deterministic init_push.
            if not isinstance(header, bytes) or len(header) != HEADERBYTES:
                raise ValueError("secretstream header must be 24 bytes")
            crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)
            self.header = header

    def push(self, message: bytes, ad: bytes, tag: int) -> bytes:
        return crypto_secretstream_xchacha20poly1305_push(self._state, message, ad, tag)


class Pull:
    """Secretstream decryption, one chunk at a time (public PyNaCl wrappers)."""

    __slots__ = ("_state",)

    def __init__(self, key: bytes, header: bytes) -> None:
        _check_key(key)
        if len(header) != HEADERBYTES:
            raise EnvelopeBodyInvalid("secretstream header must be 24 bytes")
        self._state = crypto_secretstream_xchacha20poly1305_state()
        crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)

    def pull(self, cipher: bytes, ad: bytes) -> tuple[bytes, int]:
        """Decrypt one chunk; :class:`EnvelopeBodyInvalid` unless it authenticates."""
        try:
            plain, tag = crypto_secretstream_xchacha20poly1305_pull(self._state, cipher, ad)
        except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError) as exc:
            raise EnvelopeBodyInvalid() from exc
        return plain, tag

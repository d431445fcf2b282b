"""Zero-copy streaming primitives for the envelope: BLAKE2b and secretstream, and the
thread that hashes a body while the other core encrypts or decrypts it.

Why not PyNaCl's public wrappers here: ``crypto_secretstream_xchacha20poly1305_push``
and ``_pull`` accept only ``bytes`` and return a fresh copy of every 64 KiB chunk, and
``crypto_generichash_blake2b_update`` accepts only ``bytes``; for a 1 GiB body those
copies and checks cost about a fifth of the envelope's CPU time. This module calls the
*same libsodium functions* through PyNaCl's own cffi module (``nacl._sodium``, which
every ``nacl.bindings`` function uses) on caller-owned buffers. Nothing about the
cryptography changes: tests check these calls byte for byte against the public
wrappers, and the published envelope vectors still reproduce exactly.

Memory safety is this module's job, since cffi does not check lengths: every call
checks that the output fits the caller's buffer and that inputs are within libsodium's
limits before the C function runs. The GIL is released during each call (cffi API
mode), which is what lets the hashing thread and the cipher overlap on two cores.
"""

from __future__ import annotations

from typing import Any

import nacl.exceptions
from nacl._sodium import ffi, lib  # PyNaCl's cffi module: the same libsodium build
from nacl.bindings import (
    crypto_generichash_PERSONALBYTES,
    crypto_generichash_STATEBYTES,
    crypto_secretstream_xchacha20poly1305_ABYTES,
    crypto_secretstream_xchacha20poly1305_HEADERBYTES,
    crypto_secretstream_xchacha20poly1305_KEYBYTES,
    crypto_secretstream_xchacha20poly1305_MESSAGEBYTES_MAX,
    crypto_secretstream_xchacha20poly1305_STATEBYTES,
)

from keys.crypto.hash_thread import Buffer, ThreadedHasher
from keys.errors import EnvelopeBodyInvalid

__all__ = [
    "ABYTES",
    "HEADERBYTES",
    "Blake2b",
    "Buffer",
    "SecretStreamPull",
    "SecretStreamPush",
    "StreamHasher",
]
ABYTES: int = crypto_secretstream_xchacha20poly1305_ABYTES
HEADERBYTES: int = crypto_secretstream_xchacha20poly1305_HEADERBYTES
_KEYBYTES: int = crypto_secretstream_xchacha20poly1305_KEYBYTES
_MESSAGE_MAX: int = crypto_secretstream_xchacha20poly1305_MESSAGEBYTES_MAX
_DIGEST_BYTES = 32


def _nbytes(data: Buffer) -> int:
    view = memoryview(data)
    if view.itemsize != 1 or not view.c_contiguous:
        raise TypeError("expected a contiguous byte buffer")
    return view.nbytes


def _in(data: Buffer) -> Any:
    """A C pointer to ``data`` (no copy; ``data`` must outlive the call)."""
    return ffi.from_buffer("unsigned char[]", data)


class Blake2b:
    """Incremental BLAKE2b-256 with a personalisation (libsodium's generichash)."""

    __slots__ = ("_state",)

    def __init__(self, person: bytes) -> None:
        if len(person) > crypto_generichash_PERSONALBYTES:
            raise ValueError("BLAKE2b personalisation is at most 16 bytes")
        # Zero-padded salt and personalisation, exactly as nacl.bindings does, so the
        # digest equals keys.crypto.canonical.hash32 and the published vectors.
        salt = ffi.new("unsigned char[]", crypto_generichash_PERSONALBYTES)
        personal = ffi.new("unsigned char[]", crypto_generichash_PERSONALBYTES)
        ffi.memmove(personal, person, len(person))
        self._state = ffi.new("unsigned char[]", crypto_generichash_STATEBYTES)
        rc = lib.crypto_generichash_blake2b_init_salt_personal(
            self._state, ffi.NULL, 0, _DIGEST_BYTES, salt, personal
        )
        if rc != 0:
            raise nacl.exceptions.RuntimeError("BLAKE2b init failed")

    def update(self, data: Buffer) -> None:
        n = _nbytes(data)
        if n and lib.crypto_generichash_blake2b_update(self._state, _in(data), n) != 0:
            raise nacl.exceptions.RuntimeError("BLAKE2b update failed")

    def digest(self) -> bytes:
        out = ffi.new("unsigned char[]", _DIGEST_BYTES)
        if lib.crypto_generichash_blake2b_final(self._state, out, _DIGEST_BYTES) != 0:
            raise nacl.exceptions.RuntimeError("BLAKE2b final failed")
        return bytes(ffi.buffer(out, _DIGEST_BYTES))


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != _KEYBYTES:
        raise ValueError("secretstream key must be 32 bytes")


def _check_ad(ad: bytes) -> None:
    if not isinstance(ad, bytes):
        raise TypeError("associated data must be bytes")


def _check_out(out: bytearray) -> None:
    # A bytearray: writable, contiguous, one byte per item, so len(out) is its size.
    if not isinstance(out, bytearray):
        raise TypeError("the output buffer must be a bytearray")


class SecretStreamPush:
    """``crypto_secretstream_xchacha20poly1305`` encryption into caller buffers."""

    __slots__ = ("_state", "header")

    def __init__(self, key: bytes, header: bytes | None = None) -> None:
        """A fresh random stream header, or (test vectors only) a chosen one."""
        _check_key(key)
        self._state = ffi.new("unsigned char[]", crypto_secretstream_xchacha20poly1305_STATEBYTES)
        if header is None:
            out = ffi.new("unsigned char[]", HEADERBYTES)
            rc = lib.crypto_secretstream_xchacha20poly1305_init_push(self._state, out, key)
            self.header = bytes(ffi.buffer(out, HEADERBYTES))
        else:
            # init_pull derives exactly the state init_push derives from a header it drew
            # at random; with a chosen header it is a deterministic init_push.
            if not isinstance(header, bytes) or len(header) != HEADERBYTES:
                raise ValueError("secretstream header must be 24 bytes")
            rc = lib.crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)
            self.header = header
        if rc != 0:
            raise nacl.exceptions.RuntimeError("secretstream init failed")

    def push_into(self, out: bytearray, at: int, message: Buffer, ad: bytes, tag: int) -> int:
        """Encrypt ``message`` into ``out[at:at + len + 17]``; return the ciphertext length."""
        _check_ad(ad)
        _check_out(out)
        mlen = _nbytes(message)
        clen = mlen + ABYTES
        if mlen > _MESSAGE_MAX or not 0 <= at <= len(out) - clen or not 0 <= tag <= 255:
            raise ValueError("secretstream push out of bounds")
        target = ffi.from_buffer("unsigned char[]", out, require_writable=True) + at
        rc = lib.crypto_secretstream_xchacha20poly1305_push(
            self._state, target, ffi.NULL, _in(message), mlen, ad, len(ad), tag
        )
        if rc != 0:
            raise nacl.exceptions.RuntimeError("secretstream push failed")
        return clen


class SecretStreamPull:
    """``crypto_secretstream_xchacha20poly1305`` decryption into one reused buffer."""

    __slots__ = ("_state", "_tag")

    def __init__(self, key: bytes, header: Buffer) -> None:
        _check_key(key)
        if _nbytes(header) != HEADERBYTES:
            raise EnvelopeBodyInvalid("secretstream header must be 24 bytes")
        self._state = ffi.new("unsigned char[]", crypto_secretstream_xchacha20poly1305_STATEBYTES)
        self._tag = ffi.new("unsigned char *")
        if lib.crypto_secretstream_xchacha20poly1305_init_pull(self._state, _in(header), key):
            raise EnvelopeBodyInvalid()

    def pull_into(self, out: bytearray, cipher: Buffer, ad: bytes, at: int = 0) -> tuple[int, int]:
        """Decrypt one chunk into ``out[at:at + n]``; return ``(n, tag)``.

        Raises :class:`EnvelopeBodyInvalid` if the chunk does not authenticate (altered,
        reordered, dropped, or from another stream or header). ``out`` may hold partial
        garbage after a failure; the caller discards it.
        """
        _check_ad(ad)
        _check_out(out)
        clen = _nbytes(cipher)
        if clen < ABYTES or clen - ABYTES > _MESSAGE_MAX:
            raise EnvelopeBodyInvalid("chunk length out of range")
        if not 0 <= at <= len(out) - (clen - ABYTES):
            raise ValueError("secretstream pull out of bounds")
        target = ffi.from_buffer("unsigned char[]", out, require_writable=True) + at
        rc = lib.crypto_secretstream_xchacha20poly1305_pull(
            self._state, target, ffi.NULL, self._tag, _in(cipher), clen, ad, len(ad)
        )
        if rc != 0:
            raise EnvelopeBodyInvalid()
        return clen - ABYTES, int(self._tag[0])


class StreamHasher(ThreadedHasher):
    """BLAKE2b-256 with a personalisation, fed piece by piece, in stream order.

    Large streams are hashed on one worker thread (libsodium runs without the GIL), so
    hashing overlaps encryption/decryption on a second core (``ThreadedHasher``).
    """

    def __init__(self, person: bytes) -> None:
        super().__init__(Blake2b(person))

"""The zero-copy libsodium calls in keys.crypto.envelope_stream agree with PyNaCl's public
wrappers byte for byte, and refuse every out-of-bounds buffer before C runs."""

from __future__ import annotations

import os

import pytest
from nacl.bindings import (
    crypto_secretstream_xchacha20poly1305_init_pull,
    crypto_secretstream_xchacha20poly1305_pull,
    crypto_secretstream_xchacha20poly1305_push,
    crypto_secretstream_xchacha20poly1305_state,
)

from keys.crypto.canonical import hash32
from keys.crypto.envelope_stream import (
    ABYTES,
    Blake2b,
    SecretStreamPull,
    SecretStreamPush,
    StreamHasher,
)
from keys.errors import EnvelopeBodyInvalid
from tests.support.envelope_testing import TAG_FINAL, TAG_MESSAGE, TAG_REKEY

KEY = bytes(range(32))
HEADER = bytes(range(100, 124))
AD = b"\x07" * 32


@pytest.mark.parametrize("person", [b"stafett.body", b"", b"x" * 16])
@pytest.mark.parametrize("split", [1, 7, 4096, 1 << 20])
def test_blake2b_equals_hash32_however_it_is_fed(person: bytes, split: int) -> None:
    data = os.urandom(3 * 65536 + 123)
    h = Blake2b(person)
    for i in range(0, len(data), split):
        piece = data[i : i + split]
        h.update(memoryview(piece) if i % 2 else bytearray(piece))
    assert h.digest() == hash32(data, person)


def test_the_hashing_thread_gives_the_same_digest() -> None:
    data = os.urandom(5 * (1 << 20) + 17)  # several 1 MiB batches: the thread runs
    with StreamHasher(b"stafett.body") as hasher:
        for i in range(0, len(data), 65_557):
            hasher.update(memoryview(data)[i : i + 65_557])
        assert hasher.digest() == hash32(data, b"stafett.body")


def test_blake2b_refuses_a_long_personalisation_and_odd_buffers() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Blake2b(b"x" * 17)
    with pytest.raises(TypeError):
        Blake2b(b"p").update(memoryview(bytes(8)).cast("I"))  # items wider than a byte
    with pytest.raises(TypeError):
        Blake2b(b"p").update(memoryview(bytearray(8))[::2])  # not contiguous


def _pynacl_push(chunks: list[tuple[bytes, int]]) -> list[bytes]:
    state = crypto_secretstream_xchacha20poly1305_state()
    crypto_secretstream_xchacha20poly1305_init_pull(state, HEADER, KEY)  # = init_push
    return [crypto_secretstream_xchacha20poly1305_push(state, m, AD, t) for m, t in chunks]


CHUNKS = [(os.urandom(65536), TAG_MESSAGE), (b"", TAG_MESSAGE), (b"end", TAG_FINAL)]


def test_push_into_equals_the_public_push() -> None:
    stream = SecretStreamPush(KEY, HEADER)
    assert stream.header == HEADER
    out = bytearray(70_000)
    got = []
    for message, tag in CHUNKS:
        n = stream.push_into(out, 5, message, AD, tag)
        got.append(bytes(out[5 : 5 + n]))
    assert got == _pynacl_push(CHUNKS)


def test_pull_into_equals_the_public_pull_and_refuses_tampering() -> None:
    ciphers = _pynacl_push(CHUNKS)
    stream = SecretStreamPull(KEY, HEADER)
    state = crypto_secretstream_xchacha20poly1305_state()
    crypto_secretstream_xchacha20poly1305_init_pull(state, HEADER, KEY)
    out = bytearray(65536)
    for (message, tag), cipher in zip(CHUNKS, ciphers, strict=True):
        n, got_tag = stream.pull_into(out, memoryview(cipher), AD)
        assert (bytes(out[:n]), got_tag) == (message, tag)
        assert crypto_secretstream_xchacha20poly1305_pull(state, cipher, AD) == (message, tag)
    fresh = SecretStreamPull(KEY, HEADER)
    bad = bytearray(ciphers[0])
    bad[-1] ^= 1
    with pytest.raises(EnvelopeBodyInvalid):
        fresh.pull_into(out, bad, AD)
    with pytest.raises(EnvelopeBodyInvalid):
        SecretStreamPull(KEY, HEADER).pull_into(out, ciphers[0], b"\x08" * 32)  # other hH


def test_a_fresh_push_opens_with_its_own_header() -> None:
    push = SecretStreamPush(KEY)
    assert len(push.header) == 24
    out = bytearray(100)
    n = push.push_into(out, 0, b"hej", AD, TAG_REKEY)
    m, tag = SecretStreamPull(KEY, push.header).pull_into(bytearray(10), out[:n], AD)
    assert (m, tag) == (3, TAG_REKEY)


def test_out_of_bounds_buffers_are_refused_before_libsodium_runs() -> None:
    push = SecretStreamPush(KEY, HEADER)
    for out, at in ((bytearray(10 + ABYTES - 1), 0), (bytearray(100), 91), (bytearray(100), -1)):
        with pytest.raises(ValueError, match="out of bounds"):
            push.push_into(out, at, bytes(10), AD, TAG_MESSAGE)
    with pytest.raises(ValueError, match="out of bounds"):
        push.push_into(bytearray(100), 0, b"x", AD, 256)
    with pytest.raises(TypeError):
        push.push_into(bytearray(100), 0, b"x", bytearray(AD), TAG_MESSAGE)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        push.push_into(bytes(100), 0, b"x", AD, TAG_MESSAGE)  # type: ignore[arg-type]
    pull = SecretStreamPull(KEY, HEADER)
    cipher = _pynacl_push([(bytes(100), TAG_MESSAGE)])[0]
    with pytest.raises(EnvelopeBodyInvalid):
        pull.pull_into(bytearray(100), cipher[: ABYTES - 1], AD)
    for out, at in ((bytearray(99), 0), (bytearray(150), 51), (bytearray(150), -1)):
        with pytest.raises(ValueError, match="out of bounds"):
            pull.pull_into(out, cipher, AD, at)
    out = bytearray(b"\xff" * 150)
    assert pull.pull_into(out, cipher, AD, 50) == (100, TAG_MESSAGE)
    assert out == b"\xff" * 50 + bytes(100)  # the decrypted zeros landed at out[50:]
    for key, header in ((KEY[:31], HEADER), (KEY, HEADER[:23])):
        with pytest.raises((ValueError, EnvelopeBodyInvalid)):
            SecretStreamPull(key, header)
        with pytest.raises(ValueError, match="must be"):
            SecretStreamPush(key, header)

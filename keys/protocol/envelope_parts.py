"""What sealing v1 and v2 share: the prefix (H, W), wrapped keys, reading the body.

The two versions differ only after the prefix (body hash, signature domain) and in the
header (v2 carries the commitment to ``K``, so ``hH`` — inside every wrapped key, the
``ad`` of every chunk and the signature — binds it).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from keys.crypto.canonical import hash32
from keys.crypto.envelope_v2_stream import key_commitment
from keys.crypto.keypairs import DevicePublicKeys, EncryptionPublicKey
from keys.crypto.sodium import (
    crypto_box,
    crypto_scalarmult_base,
    crypto_secretstream_xchacha20poly1305_keygen,
)
from keys.errors import EnvelopeHeaderInvalid
from keys.protocol.envelope_format import (
    MAGIC,
    MAGIC_V2,
    MAX_WRAPPED_BYTES,
    encode_wrapped,
    frame_length,
)
from keys.protocol.envelope_header import CHUNK_BYTES, EnvelopeHeader

KEY_BYTES = 32

Rng = Callable[[int], bytes]
"""Test seam: ``rng(n) -> n bytes``. Only for published test vectors, never in use."""


@dataclass(frozen=True)
class SealResult:
    header_hash: bytes  # hH
    wrapped_keys_hash: bytes  # hW
    body_hash: bytes  # hB
    content_length: int
    padded_length: int  # P, what the envelope size reveals
    total_length: int  # bytes written to ``out``
    header: EnvelopeHeader  # as sealed: v2 carries the key commitment


@dataclass(frozen=True)
class SealedPrefix:
    header: EnvelopeHeader  # as sealed (v2: with its key commitment)
    header_hash: bytes  # hH
    key: bytes  # K
    wrapped_hash: bytes  # hW
    data: bytes  # magic ‖ hlen ‖ H ‖ wlen ‖ W


def wrap_key(public: EncryptionPublicKey, message: bytes, rng: Rng | None) -> bytes:
    if rng is None:
        return public.seal(message)  # libsodium crypto_box_seal, fresh ephemeral key
    # crypto_box_seal's construction with an explicit ephemeral secret, so published
    # vectors are exact bytes: epk ‖ crypto_box(m, nonce=BLAKE2b-192(epk ‖ pk), pk, esk).
    esk = rng(KEY_BYTES)
    epk = crypto_scalarmult_base(esk)
    nonce = hashlib.blake2b(epk + bytes(public), digest_size=24).digest()
    return bytes(epk + crypto_box(message, nonce, bytes(public), esk))


def seal_prefix(
    header: EnvelopeHeader,
    by_kid: Mapping[str, DevicePublicKeys],
    version: int,
    rng: Rng | None,
) -> SealedPrefix:
    """Draw ``K``, commit to it (v2), and build H and W with every box binding ``hH``."""
    key = rng(KEY_BYTES) if rng else crypto_secretstream_xchacha20poly1305_keygen()
    commitment = key_commitment(key).hex() if version == 2 else None
    header = dataclasses.replace(header, key_commitment=commitment)
    header_bytes = header.canonical()
    h_h = hash32(header_bytes, b"stafett.hdr")
    # hH inside each box binds K to this header: a box moved to another header fails.
    wrapped = encode_wrapped(
        [(r, wrap_key(by_kid[str(r)].encryption_key, h_h + key, rng)) for r in header.recipients]
    )
    if len(wrapped) > MAX_WRAPPED_BYTES:
        raise EnvelopeHeaderInvalid("too many recipients for the wrapped-keys section")
    data = b"".join(
        (
            MAGIC_V2 if version == 2 else MAGIC,
            frame_length(len(header_bytes)),
            header_bytes,
            frame_length(len(wrapped)),
            wrapped,
        )
    )
    return SealedPrefix(header, h_h, key, hash32(wrapped, b"stafett.wrap"), data)


def read_up_to(body: BinaryIO, n: int) -> bytes:
    data = body.read(n)
    if len(data) == n or not data:
        return data
    parts = bytearray(data)  # a pipe or socket may return short reads before EOF
    while len(parts) < n:
        more = body.read(n - len(parts))
        if not more:
            break
        parts += more
    return bytes(parts)


def tail_chunks(head: bytes, zeros: int, trailer: bytes) -> Iterator[bytes]:
    """The rest of the padded plaintext (head ‖ zeros ‖ trailer) in 64 KiB pieces."""
    buf = bytearray(head)
    while zeros:
        take = min(zeros, CHUNK_BYTES - len(buf))
        buf += bytes(take)
        zeros -= take
        if len(buf) == CHUNK_BYTES:
            yield bytes(buf)
            buf.clear()
    buf += trailer
    while len(buf) > CHUNK_BYTES:
        yield bytes(buf[:CHUNK_BYTES])
        del buf[:CHUNK_BYTES]
    yield bytes(buf)

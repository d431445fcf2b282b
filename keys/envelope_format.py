"""Envelope v1 framing: constants, the bounded reader, W, and pass 1 (scan + verify).

Pass 1 is shared by the gateway (``verify_envelope``) and the recipient
(``open_envelope``): it checks framing, parses the header and the wrapped keys,
hashes the body as it streams past and verifies the sender's signature, all without
the content key. Memory stays bounded: one frame (≤ 64 KiB + 17) at a time plus at
most a few MiB of frames queued for the hashing thread.
"""

from __future__ import annotations

import hmac
import struct
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Protocol

from nacl.bindings import (
    crypto_generichash_blake2b_final,
    crypto_generichash_blake2b_init,
    crypto_generichash_blake2b_update,
    crypto_secretstream_xchacha20poly1305_ABYTES,
    crypto_secretstream_xchacha20poly1305_HEADERBYTES,
)

from .canonical import NotCanonical, b64d, b64e, canonical_json, hash32, parse_canonical
from .envelope_header import CHUNK_BYTES, MAX_HEADER_BYTES, EnvelopeHeader
from .errors import (
    DirectoryError,
    EnvelopeHeaderInvalid,
    EnvelopeMalformed,
    EnvelopeSenderUnknown,
    EnvelopeSignatureInvalid,
    EnvelopeTooLarge,
    EnvelopeTrailingData,
    EnvelopeTruncated,
    KeyIdInvalid,
    SignatureInvalid,
)
from .keypairs import SIGNATURE_BYTES, KeyId, VerifyKey
from .padding import is_padded_length

MAGIC = b"STAFETT\x01"
MAX_WRAPPED_BYTES = 64 * 1024
SS_HEADER_BYTES: int = crypto_secretstream_xchacha20poly1305_HEADERBYTES
ABYTES: int = crypto_secretstream_xchacha20poly1305_ABYTES
FULL_FRAME = CHUNK_BYTES + ABYTES  # every chunk but the last carries exactly 64 KiB
MIN_FRAME = 1 + ABYTES  # a chunk with no plaintext is never produced (P ≥ 8)
BOX_BYTES = 32 + 16 + 64  # sealed box: ephemeral pk ‖ MAC ‖ (hH ‖ K)
END = b"\x00\x00\x00\x00"
SIG_DOMAIN = b"stafett/v1/sig"
_U32 = struct.Struct(">I")


class SenderResolver(Protocol):
    """Maps the header's sender kid to its key in the *verified* directory."""

    def __call__(self, kid: KeyId) -> VerifyKey:
        """Raise :class:`EnvelopeSenderUnknown` unless ``kid`` is an active, usable key."""
        ...


def signed_message(header_hash: bytes, wrapped_hash: bytes, body_hash: bytes) -> bytes:
    """What the sender signs: domain-separated, so no other Stafett signature fits."""
    return SIG_DOMAIN + header_hash + wrapped_hash + body_hash


class StreamHasher:
    """BLAKE2b-256 with a personalisation, fed piece by piece, in stream order.

    Large streams are hashed on one worker thread in ~1 MiB batches (libsodium drops
    the GIL), so hashing overlaps encryption/decryption on a second core. At most
    ``_DEPTH`` batches wait, which keeps memory bounded. Small streams never start a
    thread. Use as a context manager so the worker is always joined.
    """

    _BATCH_BYTES = 1 << 20
    _DEPTH = 2

    def __init__(self, person: bytes) -> None:
        self._state = crypto_generichash_blake2b_init(person=person, digest_size=32)
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[None]] = deque()

    def update(self, piece: bytes) -> None:
        self._batch.append(piece)
        self._batch_bytes += len(piece)
        if self._batch_bytes >= self._BATCH_BYTES:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stafett-hash")
            self._pending.append(self._pool.submit(self._absorb, batch))
            while len(self._pending) > self._DEPTH:
                self._pending.popleft().result()

    def _absorb(self, batch: list[bytes]) -> None:
        for piece in batch:
            crypto_generichash_blake2b_update(self._state, piece)

    def digest(self) -> bytes:
        # The single worker runs batches in submission order; the state is touched by
        # this thread only once every batch has finished.
        while self._pending:
            self._pending.popleft().result()
        self._absorb(self._batch)
        self._batch = []
        return bytes(crypto_generichash_blake2b_final(self._state))

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._pending.clear()

    def __enter__(self) -> StreamHasher:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class FrameReader:
    """Exact reads from an envelope stream; every short read is a truncation."""

    def __init__(self, src: BinaryIO, *, max_size: int | None = None, offset: int = 0) -> None:
        self._src = src
        self._max_size = max_size
        self.offset = offset

    def exact(self, n: int) -> bytes:
        # Threat: a sender or relay streaming an endless envelope to exhaust disk/CPU.
        if self._max_size is not None and self.offset + n > self._max_size:
            raise EnvelopeTooLarge("envelope exceeds the size limit")
        data = self._src.read(n)
        if len(data) != n:
            parts = bytearray(data)
            while len(parts) < n:
                more = self._src.read(n - len(parts))
                if not more:
                    raise EnvelopeTruncated("the envelope ends early: it was truncated")
                parts += more
            data = bytes(parts)
        self.offset += n
        return data

    def u32(self) -> tuple[bytes, int]:
        raw = self.exact(4)
        return raw, _U32.unpack(raw)[0]

    def expect_eof(self) -> None:
        if self._src.read(1):
            raise EnvelopeTrailingData("bytes follow the signature")


def frame_length(clen: int) -> bytes:
    return _U32.pack(clen)


def encode_wrapped(entries: list[tuple[KeyId, bytes]]) -> bytes:
    """``W``: canonical JSON ``[{"box": b64, "kid": ...}]`` sorted by kid string."""
    ordered = sorted(entries, key=lambda e: str(e[0]))
    return canonical_json([{"box": b64e(box), "kid": str(kid)} for kid, box in ordered])


def decode_wrapped(data: bytes) -> tuple[tuple[KeyId, bytes], ...]:
    try:
        value = parse_canonical(data)
    except NotCanonical as exc:
        raise EnvelopeMalformed("wrapped keys are not canonical JSON") from exc
    if not isinstance(value, list) or not value:
        raise EnvelopeMalformed("wrapped keys must be a non-empty list")
    entries: list[tuple[KeyId, bytes]] = []
    previous = ""
    for item in value:
        if not isinstance(item, dict) or set(item) != {"box", "kid"}:
            raise EnvelopeMalformed("a wrapped key entry must hold exactly box and kid")
        text, box = item["kid"], item["box"]
        if not isinstance(text, str) or not isinstance(box, str):
            raise EnvelopeMalformed("a wrapped key entry has the wrong types")
        try:
            kid = KeyId.parse(text)
            raw = b64d(box, size=BOX_BYTES)
        except (KeyIdInvalid, NotCanonical) as exc:
            raise EnvelopeMalformed("a wrapped key entry is malformed") from exc
        # Sorted and unique: one byte form per recipient set, no key listed twice.
        if text <= previous:
            raise EnvelopeMalformed("wrapped keys are not sorted by kid or repeat one")
        previous = text
        entries.append((kid, raw))
    return tuple(entries)


@dataclass(frozen=True)
class EnvelopePrefix:
    """Everything before the body: framing checked, header and W parsed (not trusted)."""

    header: EnvelopeHeader
    header_hash: bytes
    wrapped: tuple[tuple[KeyId, bytes], ...]
    wrapped_hash: bytes


def read_prefix(reader: FrameReader) -> EnvelopePrefix:
    if reader.exact(len(MAGIC)) != MAGIC:
        raise EnvelopeMalformed("not a Stafett v1 envelope (magic)")
    _, hlen = reader.u32()
    if not 0 < hlen <= MAX_HEADER_BYTES:
        raise EnvelopeMalformed("header length out of range")
    header_bytes = reader.exact(hlen)
    header = EnvelopeHeader.from_bytes(header_bytes)
    _, wlen = reader.u32()
    if not 0 < wlen <= MAX_WRAPPED_BYTES:
        raise EnvelopeMalformed("wrapped-keys length out of range")
    wrapped_bytes = reader.exact(wlen)
    wrapped = decode_wrapped(wrapped_bytes)
    # Threat: a header naming one set of recipients while W serves another would let
    # the gateway check consent for devices that are not the ones who can read it.
    if tuple(str(kid) for kid, _ in wrapped) != tuple(str(r) for r in header.recipients):
        raise EnvelopeHeaderInvalid("header recipients differ from the wrapped keys")
    return EnvelopePrefix(
        header=header,
        header_hash=hash32(header_bytes, b"stafett.hdr"),
        wrapped=wrapped,
        wrapped_hash=hash32(wrapped_bytes, b"stafett.wrap"),
    )


@dataclass(frozen=True)
class BodyScan:
    """What pass 1 learnt about the body from its framing alone."""

    body_hash: bytes
    padded_length: int  # P
    chunks: int


def scan_body(reader: FrameReader) -> BodyScan:
    """Check body framing and hash it as framed on the wire (``hB``), no key needed."""
    with StreamHasher(b"stafett.body") as hasher:
        hasher.update(reader.exact(SS_HEADER_BYTES))
        total = chunks = 0
        short_seen = False
        while True:
            raw, clen = reader.u32()
            hasher.update(raw)
            if clen == 0:
                break
            # One framing per body: only the last chunk may be shorter than 64 KiB, so
            # chunk boundaries carry no information and cannot be played with.
            if short_seen or not MIN_FRAME <= clen <= FULL_FRAME:
                raise EnvelopeMalformed("chunk length out of range or a short chunk not last")
            short_seen = clen != FULL_FRAME
            hasher.update(reader.exact(clen))
            total += clen - ABYTES
            chunks += 1
        if chunks == 0:
            raise EnvelopeTruncated("the body has no chunks: it was truncated")
        if not is_padded_length(total):
            raise EnvelopeMalformed("body length is not a Padmé length")
        return BodyScan(hasher.digest(), total, chunks)


def resolve(resolve_sender: Callable[[KeyId], VerifyKey], kid: KeyId) -> VerifyKey:
    """Ask the verified directory for the sender's key; any refusal is sender_unknown."""
    try:
        key = resolve_sender(kid)
    except EnvelopeSenderUnknown:
        raise
    except DirectoryError as exc:
        raise EnvelopeSenderUnknown() from exc
    if not isinstance(key, VerifyKey):
        raise EnvelopeSenderUnknown("the directory returned no verify key")
    return key


def verify_signature(
    key: VerifyKey, prefix: EnvelopePrefix, body: BodyScan, signature: bytes
) -> None:
    message = signed_message(prefix.header_hash, prefix.wrapped_hash, body.body_hash)
    try:
        key.verify(message, signature)
    except SignatureInvalid as exc:
        raise EnvelopeSignatureInvalid() from exc


def read_signature(reader: FrameReader) -> bytes:
    signature = reader.exact(SIGNATURE_BYTES)
    reader.expect_eof()
    return signature


def same_hash(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)

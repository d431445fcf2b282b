"""Envelope v1 and v2 framing: constants, the bounded reader, W, and pass 1 (scan + verify).

The two versions share the framing; they differ in the magic's last byte, the header's
``v`` (v2 adds ``key_commitment``), the body hash (v1 BLAKE2b, v2 SHA-256) and the
signature domain. Pass 1 is the gateway's check (``verify_envelope``, both versions)
and the v1 recipient's first pass (``open_envelope``): it checks framing, parses the
header and the wrapped keys,
hashes the body as it streams past and verifies the sender's signature, all without
the content key. Memory stays bounded whatever the body size: one 1 MiB read block
plus at most a few MiB of blocks queued for the hashing thread.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from keys.crypto.canonical import (
    Hasher,
    NotCanonical,
    b64d,
    b64e,
    canonical_json,
    hash32,
    parse_canonical,
)
from keys.crypto.envelope_stream import ABYTES, HEADERBYTES, Buffer, StreamHasher
from keys.crypto.envelope_v2_stream import body_hash_state as v2_body_hash_state
from keys.crypto.envelope_v2_stream import body_hasher
from keys.crypto.hash_thread import IncrementalHash, ThreadedHasher
from keys.crypto.keypairs import SIGNATURE_BYTES, KeyId, VerifyKey
from keys.errors import (
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
from keys.protocol.envelope_header import CHUNK_BYTES, MAX_HEADER_BYTES, EnvelopeHeader
from keys.protocol.padding import is_padded_length
from keys.protocol.readahead import ReadAhead, bytes_left

MAGIC = b"STAFETT\x01"
MAGIC_V2 = b"STAFETT\x02"
_MAGICS = {MAGIC: 1, MAGIC_V2: 2}
MAX_WRAPPED_BYTES = 64 * 1024
SS_HEADER_BYTES: int = HEADERBYTES
FULL_FRAME = CHUNK_BYTES + ABYTES  # every chunk but the last carries exactly 64 KiB
MIN_FRAME = 1 + ABYTES  # a chunk with no plaintext is never produced (P ≥ 8)
BOX_BYTES = 32 + 16 + 64  # sealed box: ephemeral pk ‖ MAC ‖ (hH ‖ K)
END = b"\x00\x00\x00\x00"
SIG_DOMAIN = b"stafett/v1/sig"
SIG_DOMAIN_V2 = b"stafett/v2/sig"
BODY_PERSON = b"stafett.body"  # v1's hB personalisation
_U32 = struct.Struct(">I")


class SenderResolver(Protocol):
    """Maps the header's sender kid to its key in the *verified* directory."""

    # Positional-only, so a plain ``def resolve(k: KeyId)`` or ``directory.signing_key``
    # satisfies the protocol whatever its parameter is called.
    def __call__(self, kid: KeyId, /) -> VerifyKey:
        """Raise :class:`EnvelopeSenderUnknown` unless ``kid`` is an active, usable key."""
        ...


def signed_message(
    header_hash: bytes, wrapped_hash: bytes, body_hash: bytes, version: int = 1
) -> bytes:
    """What the sender signs: domain-separated, so no other Stafett signature fits.

    The version is in the domain: a v1 signature can never be presented as a v2 one
    (whose ``hB`` is another hash function) or the other way round.
    """
    return (SIG_DOMAIN_V2 if version == 2 else SIG_DOMAIN) + header_hash + wrapped_hash + body_hash


def new_body_hasher(version: int) -> ThreadedHasher:
    """``hB``'s hash for ``version``: v1 BLAKE2b-256 "stafett.body", v2 SHA-256."""
    return body_hasher() if version == 2 else StreamHasher(BODY_PERSON)


def body_hash_state(version: int) -> IncrementalHash:
    """``hB``'s hash for ``version``, computed on the caller's thread (fed in pieces:
    ``keys.protocol.envelope_verify_stream``)."""
    return v2_body_hash_state() if version == 2 else Hasher(BODY_PERSON)


class FrameReader:
    """Exact reads from an envelope stream; every short read is a truncation.

    Reads nothing beyond what is asked for, so :func:`read_header` leaves a caller's
    stream just after the prefix. Bulk passes use :class:`BlockReader`.
    """

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

    def u32(self) -> int:
        value: int = _U32.unpack(self.exact(4))[0]
        return value


class BlockReader:
    """Envelope reads served from large blocks: one system call per MiB, no copies.

    ``view(n)`` returns a view into the current block (or, for the rare frame that
    straddles two blocks, a fresh ``bytearray``). Blocks are immutable ``bytes``, so a
    view stays valid, and safe to hand to the hashing thread, after the reader moves
    on. While a *tap* is set, every byte consumed is fed to it in stream order, in
    whole-block pieces: that is how ``hB`` is computed over exactly the body section.
    Memory: one block plus what the tap's bounded queue holds.
    """

    BLOCK_BYTES = 1 << 20
    FIRST_BLOCK_BYTES = 64 << 10  # a small envelope is read whole without a 1 MiB buffer

    def __init__(self, src: BinaryIO, *, max_size: int | None = None, offset: int = 0) -> None:
        self._src = src
        self._max_size = max_size
        self.offset = offset
        self._block = b""
        self._pos = 0
        self._tap: ThreadedHasher | None = None
        self._tap_from = 0
        self._read_size = self.FIRST_BLOCK_BYTES
        self._ahead: ReadAhead[bytes] | None = None

    def _consume(self, n: int) -> None:
        # Threat: a sender or relay streaming an endless envelope to exhaust disk/CPU.
        if self._max_size is not None and self.offset + n > self._max_size:
            raise EnvelopeTooLarge("envelope exceeds the size limit")
        self.offset += n

    def _next_block(self) -> None:
        # Only called once the whole current block has been consumed.
        if self._tap is not None and self._tap_from < len(self._block):
            self._tap.update(memoryview(self._block)[self._tap_from :])
        block = self._ahead.next() if self._ahead else self._src.read(self._read_size)
        self._read_size = self.BLOCK_BYTES
        if not block:
            raise EnvelopeTruncated("the envelope ends early: it was truncated")
        # Immutable: views of it go to the hashing thread.
        self._block = block if type(block) is bytes else bytes(block)
        self._pos = self._tap_from = 0

    def view(self, n: int) -> Buffer:
        """The next ``n`` bytes (read-only view, or a fresh buffer across blocks)."""
        self._consume(n)
        end = self._pos + n
        if end <= len(self._block):
            piece = memoryview(self._block)[self._pos : end]
            self._pos = end
            return piece
        parts = bytearray(memoryview(self._block)[self._pos :])
        self._pos = len(self._block)
        while len(parts) < n:
            self._next_block()
            take = min(n - len(parts), len(self._block))
            parts += memoryview(self._block)[:take]
            self._pos = take
        return parts

    def skip(self, n: int) -> None:
        """Consume ``n`` bytes without looking at them (the tap still sees them)."""
        self._consume(n)
        while n > len(self._block) - self._pos:
            n -= len(self._block) - self._pos
            self._pos = len(self._block)
            self._next_block()
        self._pos += n

    def exact(self, n: int) -> bytes:
        return bytes(self.view(n))

    def u32(self) -> int:
        value: int = _U32.unpack(self.view(4))[0]
        return value

    def start_tap(self, tap: ThreadedHasher) -> None:
        self._tap, self._tap_from = tap, self._pos

    def stop_tap(self) -> None:
        if self._tap is not None and self._tap_from < self._pos:
            self._tap.update(memoryview(self._block)[self._tap_from : self._pos])
        self._tap = None

    def expect_eof(self) -> None:
        if self._pos < len(self._block):
            raise EnvelopeTrailingData("bytes follow the signature")
        if self._ahead.next() if self._ahead else self._src.read(1):
            raise EnvelopeTrailingData("bytes follow the signature")

    @contextlib.contextmanager
    def reading_ahead(self) -> Iterator[None]:
        """Inside the block, blocks are read on a worker thread, a few MiB ahead.

        Regular files of more than a few blocks only (``keys.protocol.readahead``; a
        small envelope never starts a thread). Read up to ``expect_eof`` inside the
        block: what was read ahead but not consumed is dropped on leaving.
        """
        left = bytes_left(self._src)
        if left is None or left < 4 * self.BLOCK_BYTES:
            yield
            return
        with ReadAhead(functools.partial(self._src.read, self.BLOCK_BYTES)) as ahead:
            self._ahead = ahead
            try:
                yield
            finally:
                self._ahead = None


Reader = FrameReader | BlockReader


class LengthSource(Protocol):
    """Where a frame length comes from: a reader, or one already received."""

    def u32(self) -> int: ...


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
    version: int = 1


def read_prefix(reader: Reader) -> EnvelopePrefix:
    version = _MAGICS.get(reader.exact(len(MAGIC)))
    if version is None:
        raise EnvelopeMalformed("not a Stafett v1 or v2 envelope (magic)")
    hlen = reader.u32()
    if not 0 < hlen <= MAX_HEADER_BYTES:
        raise EnvelopeMalformed("header length out of range")
    header_bytes = reader.exact(hlen)
    header = EnvelopeHeader.from_bytes(header_bytes)
    wlen = reader.u32()
    if not 0 < wlen <= MAX_WRAPPED_BYTES:
        raise EnvelopeMalformed("wrapped-keys length out of range")
    wrapped_bytes = reader.exact(wlen)
    wrapped = decode_wrapped(wrapped_bytes)
    # Threat: a v2 magic on a v1 header would be a "v2" envelope without key commitment
    # (and the other way round a header whose hash rules the reader would get wrong).
    if header.version != version:
        raise EnvelopeHeaderInvalid("the header's version differs from the magic's")
    # Threat: a header naming one set of recipients while W serves another would let
    # the gateway check consent for devices that are not the ones who can read it.
    if tuple(str(kid) for kid, _ in wrapped) != tuple(str(r) for r in header.recipients):
        raise EnvelopeHeaderInvalid("header recipients differ from the wrapped keys")
    return EnvelopePrefix(
        header=header,
        header_hash=hash32(header_bytes, b"stafett.hdr"),
        wrapped=wrapped,
        wrapped_hash=hash32(wrapped_bytes, b"stafett.wrap"),
        version=version,
    )


@dataclass(frozen=True)
class BodyScan:
    """What pass 1 learnt about the body from its framing alone."""

    body_hash: bytes
    padded_length: int  # P
    chunks: int


def scan_body(reader: BlockReader, version: int = 1) -> BodyScan:
    """Check body framing and hash it as framed on the wire (``hB``), no key needed.

    The hash is fed whole blocks of the file (the body section is contiguous on the
    wire), on the hashing thread; this thread only walks the frame lengths.
    """
    with new_body_hasher(version) as hasher:
        reader.start_tap(hasher)
        reader.skip(SS_HEADER_BYTES)
        frames = FrameCheck()
        while (clen := frames.next_length(reader)) != 0:
            reader.skip(clen)
        reader.stop_tap()
        frames.check_end()
        return BodyScan(hasher.digest(), frames.total, frames.chunks)


class FrameCheck:
    """The body's framing rules, one frame length at a time (both versions, both sides)."""

    def __init__(self) -> None:
        self.total = self.chunks = 0
        self._short_seen = False

    def next_length(self, reader: LengthSource) -> int:
        """The next frame's ciphertext length, checked; 0 at the end sentinel."""
        clen = reader.u32()
        if clen == 0:
            return 0
        # One framing per body: only the last chunk may be shorter than 64 KiB, so
        # chunk boundaries carry no information and cannot be played with.
        if self._short_seen or not MIN_FRAME <= clen <= FULL_FRAME:
            raise EnvelopeMalformed("chunk length out of range or a short chunk not last")
        self._short_seen = clen != FULL_FRAME
        self.total += clen - ABYTES
        self.chunks += 1
        return clen

    def check_end(self) -> None:
        if self.chunks == 0:
            raise EnvelopeTruncated("the body has no chunks: it was truncated")
        if not is_padded_length(self.total):
            raise EnvelopeMalformed("body length is not a Padmé length")


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
    message = signed_message(
        prefix.header_hash, prefix.wrapped_hash, body.body_hash, prefix.version
    )
    try:
        key.verify(message, signature)
    except SignatureInvalid as exc:
        raise EnvelopeSignatureInvalid() from exc


def read_signature(reader: BlockReader) -> bytes:
    signature = reader.exact(SIGNATURE_BYTES)
    reader.expect_eof()
    return signature


def same_hash(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)

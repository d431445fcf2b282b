"""Envelope v1: streaming, multi-recipient, signed end-to-end encryption.

Byte format: docs/protocol.md, "Envelope v1". In short: the header ``H`` binds every
routing and consent field; a fresh content key ``K`` is sealed to each recipient
device together with ``hH``; the body is a secretstream (64 KiB chunks, ``ad = hH``,
FINAL on the last) over Padmé-padded plaintext; the sender signs
``"stafett/v1/sig" ‖ hH ‖ hW ‖ hB``.

Threats and where they are met:
- altered header, keys or body → the signature (checked before any decryption);
- a forged sender → the sender's key comes only from the verified directory;
- re-addressing a wrapped key onto another header → ``hH`` inside each box, compared
  in constant time;
- truncation, reordering, dropping or splicing chunks → secretstream's per-chunk
  counter and FINAL tag, ``ad = hH``, and the framing rules in ``envelope_format``;
- a half-written output taken for a whole one → temp file, renamed only when the whole
  body has decrypted and matched the verified hash (recipient side: ``envelope_open``);
- memory exhaustion by a huge body → everything streams in ~512 KiB batches, with at most
  a few batches queued for the hashing thread.

Known limitation of v1 (not fixable without a format change): XChaCha20-Poly1305 is not
key-committing, so a malicious *sender* could try to build one body that decrypts under
two content keys given to two co-recipients. The zero-padding and length-trailer checks
make that far costlier than for bare AEAD, but not impossible by design; a v2 should
bind a commitment to ``K`` into ``H``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from keys.crypto.canonical import hash32
from keys.crypto.envelope_stream import ABYTES, SecretStreamPush, StreamHasher
from keys.crypto.keypairs import DeviceKeyPair, DevicePublicKeys, EncryptionPublicKey, KeyId
from keys.crypto.sodium import (
    crypto_box,
    crypto_scalarmult_base,
    crypto_secretstream_xchacha20poly1305_keygen,
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)
from keys.errors import EnvelopeHeaderInvalid
from keys.protocol.envelope_format import (
    END,
    FULL_FRAME,
    MAGIC,
    MAX_WRAPPED_BYTES,
    SS_HEADER_BYTES,
    BlockReader,
    FrameReader,
    SenderResolver,
    encode_wrapped,
    frame_length,
    read_prefix,
    read_signature,
    resolve,
    scan_body,
    signed_message,
    verify_signature,
)
from keys.protocol.envelope_header import CHUNK_BYTES, EnvelopeHeader
from keys.protocol.envelope_open import OpenedEnvelope, open_envelope
from keys.protocol.padding import TRAILER_BYTES, padded_length

__all__ = [
    "EnvelopeHeader",
    "OpenedEnvelope",
    "SealResult",
    "SenderResolver",
    "VerifiedEnvelope",
    "open_envelope",
    "read_header",
    "seal",
    "verify_envelope",
]

_TAG_MESSAGE: int = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: int = crypto_secretstream_xchacha20poly1305_TAG_FINAL
_KEY_BYTES = 32
_U32 = struct.Struct(">I")
# Frames are encrypted straight into a batch buffer, written and hashed a batch at a
# time: one write and one hash hand-off per ~512 KiB instead of two writes per frame.
_BATCH_FRAMES = 8
_BATCH_BYTES = _BATCH_FRAMES * (4 + FULL_FRAME)
_READ_BYTES = _BATCH_FRAMES * CHUNK_BYTES  # content read 512 KiB at a time

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


@dataclass(frozen=True)
class VerifiedEnvelope:
    header: EnvelopeHeader
    wrapped_kids: tuple[KeyId, ...]
    size: int
    header_hash: bytes
    sender_fingerprint: str


# --- seal -------------------------------------------------------------------------------
def _wrap_key(public: EncryptionPublicKey, message: bytes, rng: Rng | None) -> bytes:
    if rng is None:
        return public.seal(message)  # libsodium crypto_box_seal, fresh ephemeral key
    # crypto_box_seal's construction with an explicit ephemeral secret, so published
    # vectors are exact bytes: epk ‖ crypto_box(m, nonce=BLAKE2b-192(epk ‖ pk), pk, esk).
    esk = rng(_KEY_BYTES)
    epk = crypto_scalarmult_base(esk)
    nonce = hashlib.blake2b(epk + bytes(public), digest_size=24).digest()
    return bytes(epk + crypto_box(message, nonce, bytes(public), esk))


def _read_up_to(body: BinaryIO, n: int) -> bytes:
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


def _tail_chunks(head: bytes, zeros: int, trailer: bytes) -> Iterator[bytes]:
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


def seal(
    header: EnvelopeHeader,
    body: BinaryIO,
    recipients: Sequence[DevicePublicKeys],
    sender: DeviceKeyPair,
    out: BinaryIO,
    *,
    _rng: Rng | None = None,
) -> SealResult:
    """Stream ``body`` into an envelope on ``out`` for every device in ``recipients``.

    ``recipients`` must be exactly the keys named in ``header.recipients`` (the caller
    took them from the verified directory) and ``sender`` the key named in
    ``header.sender``. ``_rng`` exists only to produce published test vectors.
    """
    if sender.kid != header.sender:
        raise EnvelopeHeaderInvalid("header sender is not the sealing key")
    by_kid = {str(r.kid): r for r in recipients}
    if len(by_kid) != len(recipients) or sorted(by_kid) != [str(r) for r in header.recipients]:
        raise EnvelopeHeaderInvalid("recipient keys do not match header recipients")

    header_bytes = header.canonical()
    h_h = hash32(header_bytes, b"stafett.hdr")
    key = _rng(_KEY_BYTES) if _rng else crypto_secretstream_xchacha20poly1305_keygen()
    # hH inside each box binds K to this header: a box moved to another header fails.
    wrapped = encode_wrapped(
        [(r, _wrap_key(by_kid[str(r)].encryption_key, h_h + key, _rng)) for r in header.recipients]
    )
    if len(wrapped) > MAX_WRAPPED_BYTES:
        raise EnvelopeHeaderInvalid("too many recipients for the wrapped-keys section")
    h_w = hash32(wrapped, b"stafett.wrap")

    prefix = b"".join(
        (MAGIC, frame_length(len(header_bytes)), header_bytes, frame_length(len(wrapped)), wrapped)
    )
    out.write(prefix)
    written = len(prefix)

    # A chosen stream header only for published vectors (drawn last, after the boxes).
    stream = SecretStreamPush(key, _rng(SS_HEADER_BYTES) if _rng is not None else None)

    with StreamHasher(b"stafett.body") as hasher:
        out.write(stream.header)
        hasher.update(stream.header)
        written += SS_HEADER_BYTES
        batch, used = bytearray(), 0
        remaining: int | None = None  # framed bytes still to come, once the end is known

        def flush() -> None:
            nonlocal batch, used, written
            if used:
                piece = memoryview(batch)[:used]
                out.write(piece)
                # Handed to the hashing thread; this batch is never written to again (the
                # next one is a new buffer), so the thread reads stable bytes.
                hasher.update(piece)
                written += used
            batch, used = bytearray(), 0

        def reserve(n: int) -> None:
            nonlocal batch
            if used + n > len(batch):
                flush()
                # ~512 KiB batches for a large body; exactly what is left for the rest (a small
                # message never pays for zeroing a megabyte).
                size = _BATCH_BYTES if remaining is None else min(_BATCH_BYTES, remaining)
                batch = bytearray(max(size, n))

        def emit(plain: bytes | memoryview, tag: int) -> None:
            nonlocal used, remaining
            reserve(4 + len(plain) + ABYTES)
            clen = stream.push_into(batch, used + 4, plain, h_h, tag)
            _U32.pack_into(batch, used, clen)
            used += 4 + clen
            if remaining is not None:
                remaining -= 4 + clen

        # Content is read 512 KiB at a time and encrypted from views of that block. A full
        # 64 KiB content chunk is never the last (at least the trailer follows), so it
        # goes out at once; what is left at the end of the body starts the tail.
        content_length = 0
        while True:
            block = _read_up_to(body, _READ_BYTES)
            content_length += len(block)
            view = memoryview(block)
            whole = len(block) - len(block) % CHUNK_BYTES
            for at in range(0, whole, CHUNK_BYTES):
                emit(view[at : at + CHUNK_BYTES], _TAG_MESSAGE)
            if len(block) < _READ_BYTES:
                data = bytes(view[whole:])
                break

        total = padded_length(content_length)
        tail = total - (content_length - len(data))  # plaintext bytes still to push
        frames = -(-tail // CHUNK_BYTES)
        remaining = tail + frames * (4 + ABYTES) + len(END)
        pieces = _tail_chunks(
            data,
            total - content_length - TRAILER_BYTES,
            content_length.to_bytes(TRAILER_BYTES, "little"),
        )
        pending = next(pieces)
        for piece in pieces:
            emit(pending, _TAG_MESSAGE)
            pending = piece
        emit(pending, _TAG_FINAL)  # truncation is detectable only through this tag
        reserve(len(END))
        batch[used : used + len(END)] = END
        used += len(END)
        flush()
        h_b = hasher.digest()

    signature = sender.signing_key.sign(signed_message(h_h, h_w, h_b))
    out.write(signature)
    written += len(signature)
    return SealResult(h_h, h_w, h_b, content_length, total, written)


# --- gateway side -------------------------------------------------------------------------
def read_header(src: BinaryIO) -> EnvelopeHeader:
    """Parse the header only. Nothing is verified: use it for routing hints, not trust."""
    return read_prefix(FrameReader(src)).header


def verify_envelope(
    src: BinaryIO, resolve_sender: SenderResolver, *, max_size: int | None = None
) -> VerifiedEnvelope:
    """Framing, header, W, sender key and signature in one streaming pass, without K."""
    reader = BlockReader(src, max_size=max_size)
    prefix = read_prefix(reader)
    sender_key = resolve(resolve_sender, prefix.header.sender)
    body = scan_body(reader)
    verify_signature(sender_key, prefix, body, read_signature(reader))
    return VerifiedEnvelope(
        header=prefix.header,
        wrapped_kids=tuple(kid for kid, _ in prefix.wrapped),
        size=reader.offset,
        header_hash=prefix.header_hash,
        sender_fingerprint=sender_key.fingerprint(),
    )

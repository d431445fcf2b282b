"""Envelopes: streaming, multi-recipient, signed end-to-end encryption (v1 and v2).

``seal`` writes v2 by default (``envelope_seal_v2``; docs/protocol.md, "Envelope v2":
v1's layout plus a commitment to ``K`` in ``H``, SHA-256 for ``hB``, a one-pass open).
``verify_envelope`` and ``open_envelope`` take both. v1 below.

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
make that far costlier than for bare AEAD, but not impossible by design. v2 closes it
with a commitment to ``K`` in ``H``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from keys.crypto.envelope_stream import ABYTES, SecretStreamPush, StreamHasher
from keys.crypto.keypairs import DeviceKeyPair, DevicePublicKeys, KeyId
from keys.crypto.sodium import (
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)
from keys.errors import EnvelopeHeaderInvalid
from keys.protocol.envelope_format import (
    END,
    FULL_FRAME,
    SS_HEADER_BYTES,
    BlockReader,
    FrameReader,
    SenderResolver,
    read_prefix,
    read_signature,
    resolve,
    scan_body,
    signed_message,
    verify_signature,
)
from keys.protocol.envelope_header import CHUNK_BYTES, EnvelopeHeader
from keys.protocol.envelope_open import OpenedEnvelope, open_envelope
from keys.protocol.envelope_parts import (
    Rng,
    SealResult,
    read_up_to,
    seal_prefix,
    tail_chunks,
)
from keys.protocol.envelope_seal_v2 import seal_v2_body
from keys.protocol.padding import TRAILER_BYTES, padded_length

ENVELOPE_VERSION = 2  # what ``seal`` writes unless told otherwise (key-committing)

__all__ = [
    "ENVELOPE_VERSION",
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
_U32 = struct.Struct(">I")
# Frames are encrypted straight into a batch buffer, written and hashed a batch at a
# time: one write and one hash hand-off per ~512 KiB instead of two writes per frame.
_BATCH_FRAMES = 8
_BATCH_BYTES = _BATCH_FRAMES * (4 + FULL_FRAME)
_READ_BYTES = _BATCH_FRAMES * CHUNK_BYTES  # content read 512 KiB at a time


@dataclass(frozen=True)
class VerifiedEnvelope:
    header: EnvelopeHeader
    wrapped_kids: tuple[KeyId, ...]
    size: int
    header_hash: bytes
    sender_fingerprint: str


# --- seal ---------------------------------------------------------------------------------
def seal(
    header: EnvelopeHeader,
    body: BinaryIO,
    recipients: Sequence[DevicePublicKeys],
    sender: DeviceKeyPair,
    out: BinaryIO,
    *,
    version: int = ENVELOPE_VERSION,
    _rng: Rng | None = None,
) -> SealResult:
    """Stream ``body`` into an envelope on ``out`` for every device in ``recipients``.

    ``recipients`` must be exactly the keys named in ``header.recipients`` (the caller
    took them from the verified directory) and ``sender`` the key named in
    ``header.sender``. ``version`` 2 (the default) is key-committing; 1 exists for
    interoperability and the published v1 vectors. ``_rng`` exists only to produce
    published test vectors. ``header`` is given without a key commitment; the header
    as sealed is ``SealResult.header``.
    """
    if version not in (1, 2):
        raise ValueError("envelope version must be 1 or 2")
    if sender.kid != header.sender:
        raise EnvelopeHeaderInvalid("header sender is not the sealing key")
    by_kid = {str(r.kid): r for r in recipients}
    if len(by_kid) != len(recipients) or sorted(by_kid) != [str(r) for r in header.recipients]:
        raise EnvelopeHeaderInvalid("recipient keys do not match header recipients")
    prefix = seal_prefix(header, by_kid, version, _rng)
    if version == 2:
        return seal_v2_body(prefix, body, sender, out, _rng)
    header, h_h, key, h_w = prefix.header, prefix.header_hash, prefix.key, prefix.wrapped_hash
    out.write(prefix.data)
    written = len(prefix.data)

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
            block = read_up_to(body, _READ_BYTES)
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
        pieces = tail_chunks(
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
    return SealResult(h_h, h_w, h_b, content_length, total, written, header)


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
    body = scan_body(reader, prefix.version)
    verify_signature(sender_key, prefix, body, read_signature(reader))
    return VerifiedEnvelope(
        header=prefix.header,
        wrapped_kids=tuple(kid for kid, _ in prefix.wrapped),
        size=reader.offset,
        header_hash=prefix.header_hash,
        sender_fingerprint=sender_key.fingerprint(),
    )

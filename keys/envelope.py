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
  body has decrypted and matched the verified hash;
- memory exhaustion by a huge body → everything streams, one chunk at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import nacl.exceptions
from nacl.bindings import (
    crypto_box,
    crypto_scalarmult_base,
    crypto_secretstream_xchacha20poly1305_init_pull,
    crypto_secretstream_xchacha20poly1305_init_push,
    crypto_secretstream_xchacha20poly1305_keygen,
    crypto_secretstream_xchacha20poly1305_pull,
    crypto_secretstream_xchacha20poly1305_push,
    crypto_secretstream_xchacha20poly1305_state,
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)

from .canonical import hash32
from .envelope_format import (
    END,
    FULL_FRAME,
    MAGIC,
    MAX_WRAPPED_BYTES,
    MIN_FRAME,
    SS_HEADER_BYTES,
    FrameReader,
    SenderResolver,
    StreamHasher,
    encode_wrapped,
    frame_length,
    read_prefix,
    read_signature,
    resolve,
    same_hash,
    scan_body,
    signed_message,
    verify_signature,
)
from .envelope_header import CHUNK_BYTES, EnvelopeHeader
from .errors import (
    EnvelopeBodyInvalid,
    EnvelopeError,
    EnvelopeHeaderInvalid,
    EnvelopeMalformed,
    EnvelopeNotForThisDevice,
    EnvelopeSignatureInvalid,
    EnvelopeTruncated,
    EnvelopeWrappedKeyInvalid,
)
from .keypairs import DeviceKeyPair, DevicePublicKeys, EncryptionPublicKey, KeyId
from .padding import TRAILER_BYTES, min_content_length, padded_length

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


@dataclass(frozen=True)
class OpenedEnvelope:
    header: EnvelopeHeader
    content_length: int
    sender_fingerprint: str
    header_hash: bytes
    opened_with: KeyId  # which of the device's key versions held the wrapped key


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

    state = crypto_secretstream_xchacha20poly1305_state()
    if _rng is None:
        ss_header = crypto_secretstream_xchacha20poly1305_init_push(state, key)
    else:
        # init_pull computes exactly the state init_push derives from a header it drew
        # at random; with a chosen header it is a deterministic init_push.
        ss_header = _rng(SS_HEADER_BYTES)
        crypto_secretstream_xchacha20poly1305_init_pull(state, ss_header, key)

    with StreamHasher(b"stafett.body") as hasher:
        out.write(ss_header)
        hasher.update(ss_header)
        written += SS_HEADER_BYTES

        def emit(plain: bytes, tag: int) -> None:
            nonlocal written
            cipher = crypto_secretstream_xchacha20poly1305_push(state, plain, h_h, tag)
            length = frame_length(len(cipher))
            out.write(length)
            out.write(cipher)
            hasher.update(length)
            hasher.update(cipher)
            written += 4 + len(cipher)

        content_length = 0
        while True:
            data = _read_up_to(body, CHUNK_BYTES)
            content_length += len(data)
            if len(data) < CHUNK_BYTES:
                break
            emit(data, _TAG_MESSAGE)  # never the last: at least the trailer follows

        total = padded_length(content_length)
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
        out.write(END)
        hasher.update(END)
        h_b = hasher.digest()

    signature = sender.signing_key.sign(signed_message(h_h, h_w, h_b))
    out.write(signature)
    written += len(END) + len(signature)
    return SealResult(h_h, h_w, h_b, content_length, total, written)


# --- gateway side -------------------------------------------------------------------------
def read_header(src: BinaryIO) -> EnvelopeHeader:
    """Parse the header only. Nothing is verified: use it for routing hints, not trust."""
    return read_prefix(FrameReader(src)).header


def verify_envelope(
    src: BinaryIO, resolve_sender: SenderResolver, *, max_size: int | None = None
) -> VerifiedEnvelope:
    """Framing, header, W, sender key and signature in one streaming pass, without K."""
    reader = FrameReader(src, max_size=max_size)
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


# --- recipient side -----------------------------------------------------------------------
def _unwrap(boxes: list[tuple[DeviceKeyPair, bytes]], header_hash: bytes) -> tuple[KeyId, bytes]:
    failure: EnvelopeError = EnvelopeWrappedKeyInvalid()
    for keypair, box in boxes:
        try:
            plain = keypair.encryption_key.unseal(box)
        except EnvelopeWrappedKeyInvalid as exc:
            failure = exc
            continue
        # Constant time: the comparison must not tell a forger how much of hH matched.
        if len(plain) != len(header_hash) + _KEY_BYTES or not same_hash(
            plain[: len(header_hash)], header_hash
        ):
            failure = EnvelopeWrappedKeyInvalid("the wrapped key belongs to another header")
            continue
        return keypair.kid, plain[len(header_hash) :]
    raise failure


def _decrypt_body(
    reader: FrameReader, key: bytes, header_hash: bytes, padded: int, out: BinaryIO
) -> tuple[int, bytes]:
    """Pass 2: decrypt into ``out``; return (content length, hB as re-read)."""
    pad_from = min_content_length(padded)  # before this offset it is content for sure
    trailer_at = padded - TRAILER_BYTES
    trailer = bytearray()
    nonzero_end = offset = 0
    final = False
    state = crypto_secretstream_xchacha20poly1305_state()
    with StreamHasher(b"stafett.body") as hasher:
        ss_header = reader.exact(SS_HEADER_BYTES)
        hasher.update(ss_header)
        try:
            crypto_secretstream_xchacha20poly1305_init_pull(state, ss_header, key)
        except nacl.exceptions.CryptoError as exc:
            raise EnvelopeBodyInvalid() from exc
        while True:
            raw, clen = reader.u32()
            hasher.update(raw)
            if clen == 0:
                break
            # Re-checked: the file is read a second time and could have changed.
            if final or not MIN_FRAME <= clen <= FULL_FRAME:
                raise EnvelopeMalformed("a chunk follows the FINAL chunk or has a bad length")
            cipher = reader.exact(clen)
            hasher.update(cipher)
            try:
                plain, tag = crypto_secretstream_xchacha20poly1305_pull(state, cipher, header_hash)
            except nacl.exceptions.CryptoError as exc:
                # Altered, reordered, dropped or spliced from another body (ad = hH).
                raise EnvelopeBodyInvalid() from exc
            if tag == _TAG_FINAL:
                final = True
            elif tag != _TAG_MESSAGE:
                raise EnvelopeBodyInvalid("unexpected secretstream tag")
            end = offset + len(plain)
            if end > padded:
                raise EnvelopeMalformed("body is longer than it was when verified")
            out.write(plain)
            start, stop = max(offset, pad_from), min(end, trailer_at)
            if start < stop:
                kept = plain[start - offset : stop - offset].rstrip(b"\0")
                if kept:
                    nonzero_end = start + len(kept)
            if end > trailer_at:
                trailer += plain[max(trailer_at, offset) - offset :]
            offset = end
        if not final:
            raise EnvelopeTruncated()
        body_hash = hasher.digest()
    if offset != padded:
        raise EnvelopeMalformed("body length changed since it was verified")
    content_length = int.from_bytes(trailer, "little")
    # One plaintext form: the trailer must give back P and the padding must be zeros.
    if content_length > trailer_at or padded_length(content_length) != padded:
        raise EnvelopeBodyInvalid("the padding trailer is inconsistent")
    if nonzero_end > content_length:
        raise EnvelopeBodyInvalid("the padding is not zeros")
    return content_length, body_hash


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/filesystem allows it
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def open_envelope(
    src_path: Path,
    device: DeviceKeyPair | Sequence[DeviceKeyPair],
    resolve_sender: SenderResolver,
    dest_path: Path,
    *,
    max_size: int | None = None,
    durable: bool = True,
) -> OpenedEnvelope:
    """Verify, then decrypt ``src_path`` into ``dest_path`` (atomically).

    ``device`` is every key version the device still holds. Pass 1 verifies framing,
    sender and signature; only then is the content key unwrapped and pass 2 decrypts
    into a temp file next to ``dest_path``, renamed into place only when the whole body
    authenticated and still hashes to the signed ``hB``. On any failure nothing is left
    behind. ``durable`` fsyncs before the rename (a handover is acknowledged, and the
    gateway copy deleted, on the strength of this file).
    """
    keypairs = [device] if isinstance(device, DeviceKeyPair) else list(device)
    held = {str(kp.kid): kp for kp in keypairs}
    with open(src_path, "rb", buffering=0) as src:  # frames are read whole
        reader = FrameReader(src, max_size=max_size)
        prefix = read_prefix(reader)
        sender_key = resolve(resolve_sender, prefix.header.sender)
        mine = [(held[str(kid)], box) for kid, box in prefix.wrapped if str(kid) in held]
        if not mine:
            raise EnvelopeNotForThisDevice()  # cheap refusal before hashing the body
        body_offset = reader.offset
        body = scan_body(reader)
        verify_signature(sender_key, prefix, body, read_signature(reader))
        # Verified: only now is anything decrypted.
        kid, key = _unwrap(mine, prefix.header_hash)

        src.seek(body_offset)
        reader = FrameReader(src, offset=body_offset)
        directory = dest_path.parent
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest_path.name}.", suffix=".part", dir=directory)
        tmp = Path(tmp_name)
        try:
            with open(fd, "wb") as out:
                content_length, body_hash = _decrypt_body(
                    reader, key, prefix.header_hash, body.padded_length, out
                )
                # Threat: the file swapped between the passes (time-of-check/time-of-use).
                if not same_hash(body_hash, body.body_hash):
                    raise EnvelopeSignatureInvalid("the envelope changed while it was opened")
                out.flush()
                out.truncate(content_length)
                if durable:
                    os.fsync(out.fileno())
            os.replace(tmp, dest_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
    if durable:
        _fsync_dir(directory)
    return OpenedEnvelope(
        header=prefix.header,
        content_length=content_length,
        sender_fingerprint=sender_key.fingerprint(),
        header_hash=prefix.header_hash,
        opened_with=kid,
    )

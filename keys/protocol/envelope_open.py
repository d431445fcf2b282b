"""Opening an envelope: v2 in one pass (``envelope_open_v2``), v1 in two (below).

Envelope v1, recipient side: verify everything, then decrypt into a temp file.

Order (docs/protocol.md, "Open"): framing → header → sender key from the verified
directory → signature over the whole stream (pass 1) → own wrapped key, unsealed and
bound to ``hH`` (constant time) → decrypt (pass 2) into a temp file next to the
destination → rename only when the whole body authenticated, ended with FINAL, has
zero padding and a consistent length trailer, and re-hashed to the signed ``hB``.

Threats and where they are met:
- altered header, keys or body → the signature, checked before any decryption;
- truncation, reordering, dropping or splicing chunks → secretstream's per-chunk
  counter and FINAL tag, ``ad = hH``, and the framing rules re-checked in pass 2;
- a second plaintext form (non-zero padding, a trailer that does not give back ``P``)
  → refused, so one envelope decrypts to exactly one content;
- the file changing between the passes → pass 2 re-hashes what it decrypts (below);
- a half-written output taken for a whole one → temp file (0600), renamed at the end,
  removed on any failure;
- memory exhaustion by a huge body → 1 MiB read blocks, a 256 KiB plaintext buffer and
  at most two batches queued for the hashing thread.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from keys.crypto.envelope_stream import ABYTES, SecretStreamPull, StreamHasher
from keys.crypto.keypairs import DeviceKeyPair, KeyId
from keys.crypto.sodium import (
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)
from keys.errors import (
    EnvelopeBodyInvalid,
    EnvelopeMalformed,
    EnvelopeNotForThisDevice,
    EnvelopeSignatureInvalid,
    EnvelopeTruncated,
)
from keys.protocol.envelope_format import (
    FULL_FRAME,
    MIN_FRAME,
    SS_HEADER_BYTES,
    BlockReader,
    SenderResolver,
    read_prefix,
    read_signature,
    resolve,
    same_hash,
    scan_body,
    verify_signature,
)
from keys.protocol.envelope_header import CHUNK_BYTES, EnvelopeHeader
from keys.protocol.envelope_open_v2 import open_one_pass, unwrap
from keys.protocol.padding import TRAILER_BYTES, min_content_length, padded_length

_TAG_MESSAGE: int = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: int = crypto_secretstream_xchacha20poly1305_TAG_FINAL
_KEY_BYTES = 32
_OUT_BATCH_BYTES = 4 * CHUNK_BYTES  # plaintext written 256 KiB at a time


@dataclass(frozen=True)
class OpenedEnvelope:
    header: EnvelopeHeader
    content_length: int
    sender_fingerprint: str
    header_hash: bytes
    opened_with: KeyId  # which of the device's key versions held the wrapped key


def _decrypt_body(
    reader: BlockReader, key: bytes, header_hash: bytes, padded: int, out: BinaryIO
) -> tuple[int, bytes]:
    """Pass 2: decrypt into ``out``; return (content length, hB as re-read).

    Chunks are decrypted straight into a 256 KiB batch buffer that is written with one
    call and then reused, so ``out`` must copy what it is given (a file does).
    """
    pad_from = min_content_length(padded)  # before this offset it is content for sure
    trailer_at = padded - TRAILER_BYTES
    trailer = bytearray()
    nonzero_end = offset = 0
    final = False
    batch, used = bytearray(min(_OUT_BATCH_BYTES, padded)), 0  # P is known from pass 1
    with StreamHasher(b"stafett.body") as hasher:
        reader.start_tap(hasher)
        stream = SecretStreamPull(key, reader.view(SS_HEADER_BYTES))
        while True:
            clen = reader.u32()
            if clen == 0:
                break
            # Re-checked: the file is read a second time and could have changed.
            if final or not MIN_FRAME <= clen <= FULL_FRAME:
                raise EnvelopeMalformed("a chunk follows the FINAL chunk or has a bad length")
            if offset + clen - ABYTES > padded:
                # Checked before decrypting: the batch is sized for P, and a longer body
                # can only mean the file changed after pass 1.
                raise EnvelopeMalformed("body is longer than it was when verified")
            if used + clen - ABYTES > len(batch):
                out.write(memoryview(batch)[:used])
                used = 0
            # Altered, reordered, dropped or spliced from another body (ad = hH) → refused.
            n, tag = stream.pull_into(batch, reader.view(clen), header_hash, used)
            if tag == _TAG_FINAL:
                final = True
            elif tag != _TAG_MESSAGE:
                raise EnvelopeBodyInvalid("unexpected secretstream tag")
            end = offset + n
            chunk = memoryview(batch)[used : used + n]
            start, stop = max(offset, pad_from), min(end, trailer_at)
            if start < stop:
                kept = bytes(chunk[start - offset : stop - offset]).rstrip(b"\0")
                if kept:
                    nonzero_end = start + len(kept)
            if end > trailer_at:
                trailer += chunk[max(trailer_at, offset) - offset :]
            offset = end
            used += n
        reader.stop_tap()
        if not final:
            raise EnvelopeTruncated()
        out.write(memoryview(batch)[:used])
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
    with open(src_path, "rb", buffering=0) as src:  # BlockReader reads 1 MiB at a time
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            # A FIFO or device cannot be read twice, and could serve each pass differently.
            raise EnvelopeMalformed("the envelope is not a regular file")
        opened = _open_stream(
            src, device, resolve_sender, dest_path, max_size=max_size, durable=durable
        )
    if durable:
        _fsync_dir(dest_path.parent)
    return opened


def _open_stream(
    src: BinaryIO,
    device: DeviceKeyPair | Sequence[DeviceKeyPair],
    resolve_sender: SenderResolver,
    dest_path: Path,
    *,
    max_size: int | None,
    durable: bool,
) -> OpenedEnvelope:
    """:func:`open_envelope` on an open, seekable stream (the tests' seam for TOCTOU)."""
    keypairs = [device] if isinstance(device, DeviceKeyPair) else list(device)
    held = {str(kp.kid): kp for kp in keypairs}
    reader = BlockReader(src, max_size=max_size)
    prefix = read_prefix(reader)
    sender_key = resolve(resolve_sender, prefix.header.sender)
    mine = [(held[str(kid)], box) for kid, box in prefix.wrapped if str(kid) in held]
    if not mine:
        raise EnvelopeNotForThisDevice()  # cheap refusal before hashing the body
    if prefix.version == 2:
        kid, content_length = open_one_pass(
            reader, prefix, sender_key, mine, dest_path, durable=durable
        )
        return OpenedEnvelope(
            header=prefix.header,
            content_length=content_length,
            sender_fingerprint=sender_key.fingerprint(),
            header_hash=prefix.header_hash,
            opened_with=kid,
        )
    body_offset = reader.offset
    body = scan_body(reader)
    verify_signature(sender_key, prefix, body, read_signature(reader))
    # Verified: only now is anything decrypted.
    kid, key = unwrap(mine, prefix.header_hash)

    # Pass 2 reads the same descriptor again, so replacing or renaming the file between
    # the passes changes nothing. Writing *into* it still would, and who can do that is
    # not ours to decide: the caller may hand us a file on a network share, one a sync
    # or backup tool rewrites in place, or one a malicious co-recipient can reach. Such a
    # co-recipient knows K, so every chunk it substitutes would authenticate; only the
    # signed hB says it is not what the sender sent. So pass 2 hashes what it decrypts
    # (on the second core, overlapped with decryption) and the temp file is renamed
    # only if that hash equals the verified one. Dropping this re-hash would save CPU
    # but not wall time on an idle two-core machine, and would reopen that forgery.
    src.seek(body_offset)
    reader = BlockReader(src, offset=body_offset)
    directory = dest_path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest_path.name}.", suffix=".part", dir=directory)
    tmp = Path(tmp_name)  # mkstemp: O_EXCL, mode 0600
    try:
        with open(fd, "wb") as out:
            content_length, body_hash = _decrypt_body(
                reader, key, prefix.header_hash, body.padded_length, out
            )
            # Threat: the file changed between the passes (time-of-check/time-of-use).
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
    return OpenedEnvelope(
        header=prefix.header,
        content_length=content_length,
        sender_fingerprint=sender_key.fingerprint(),
        header_hash=prefix.header_hash,
        opened_with=kid,
    )

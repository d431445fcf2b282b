"""Envelope v2, sender side: the body after the prefix (docs/protocol.md, "Envelope v2").

The same framing and plaintext layout as v1 (64 KiB chunks, Padmé, a u64 LE length
trailer, FINAL on the last chunk, ``ad = hH``), with ``hH`` now covering the commitment
to ``K`` that ``envelope_parts.seal_prefix`` put into ``H``; ``hB`` is SHA-256 over
``"stafett/v2/body"`` ‖ the body section, computed on a second core while this thread
encrypts; the signature is ``Ed25519("stafett/v2/sig" ‖ hH ‖ hW ‖ hB)``.

Only PyNaCl's public bindings are called (``keys.crypto.envelope_v2_stream``).
Memory: one 64 KiB content chunk read at a time, frames written ~512 KiB at a time, at
most a few batches queued for the hashing thread.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Generator
from typing import BinaryIO

from keys.crypto.envelope_v2_stream import Push
from keys.crypto.keypairs import DeviceKeyPair
from keys.crypto.sodium import (
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)
from keys.protocol.envelope_format import END, SS_HEADER_BYTES, new_body_hasher, signed_message
from keys.protocol.envelope_header import CHUNK_BYTES
from keys.protocol.envelope_parts import Rng, SealedPrefix, SealResult, read_up_to, tail_chunks
from keys.protocol.padding import TRAILER_BYTES, padded_length
from keys.protocol.readahead import ReadAhead, is_regular_file

_TAG_MESSAGE: int = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: int = crypto_secretstream_xchacha20poly1305_TAG_FINAL
_U32 = struct.Struct(">I")
_BATCH_BYTES = 1 << 19  # frames joined, written and hashed ~512 KiB at a time
_GROUP_CHUNKS = 16  # content chunks read per hand-over (1 MiB)


def _content_chunks(body: BinaryIO) -> Generator[bytes, None, None]:
    """The body in 64 KiB chunks, up to and including the first short (maybe empty) one.

    The first MiB is read here (a small message never starts a thread); the rest of a
    regular file is read on a worker thread a few MiB ahead, so the page-cache copies
    overlap the cipher (``keys.protocol.readahead``). Close the generator when done.
    """
    ended = False

    def group() -> list[bytes]:
        nonlocal ended
        chunks: list[bytes] = []
        while not ended and len(chunks) < _GROUP_CHUNKS:
            chunks.append(read_up_to(body, CHUNK_BYTES))
            ended = len(chunks[-1]) < CHUNK_BYTES
        return chunks

    yield from group()
    if ended:
        return
    if not is_regular_file(body):
        while not ended:
            yield from group()
        return
    with ReadAhead(group) as ahead:
        while True:
            yield from ahead.next()  # the group that ends the body is its last


def seal_v2_body(
    prefix: SealedPrefix, body: BinaryIO, sender: DeviceKeyPair, out: BinaryIO, rng: Rng | None
) -> SealResult:
    """Write ``prefix``, the body as a secretstream, and the signature to ``out``."""
    h_h = prefix.header_hash
    out.write(prefix.data)
    # A chosen stream header only for published vectors (drawn last, after the boxes).
    stream = Push(prefix.key, rng(SS_HEADER_BYTES) if rng is not None else None)
    pieces: list[bytes] = [stream.header]
    pending = len(stream.header)
    written = len(prefix.data)

    with new_body_hasher(2) as hasher:

        def emit(frame: bytes) -> None:
            nonlocal pending, written
            pieces.append(frame)
            pending += len(frame)
            if pending >= _BATCH_BYTES:
                flush()

        def flush() -> None:
            nonlocal pending, written
            # ~512 KiB of frames handed to the worker thread, which joins, hashes and
            # writes them (in order; nothing else writes to ``out`` until ``digest`` has
            # waited for it), so hash, copy and I/O overlap the cipher on this thread.
            # The pieces are immutable bytes: the worker reads stable data.
            batch = pieces.copy()
            pieces.clear()
            hasher.update_joined(batch, out.write)
            written += pending
            pending = 0

        def push(plain: bytes, tag: int) -> None:
            cipher = stream.push(plain, h_h, tag)
            emit(_U32.pack(len(cipher)))
            emit(cipher)

        # A full 64 KiB content chunk is never the last (at least the trailer follows),
        # so it goes out at once; a short read is the end of the body.
        content_length = 0
        with contextlib.closing(_content_chunks(body)) as chunks:
            for chunk in chunks:
                content_length += len(chunk)
                if len(chunk) < CHUNK_BYTES:
                    break
                push(chunk, _TAG_MESSAGE)
        total = padded_length(content_length)
        rest = tail_chunks(
            chunk,
            total - content_length - TRAILER_BYTES,
            content_length.to_bytes(TRAILER_BYTES, "little"),
        )
        last = next(rest)
        for piece in rest:
            push(last, _TAG_MESSAGE)
            last = piece
        push(last, _TAG_FINAL)  # truncation is detectable only through this tag
        emit(END)
        flush()
        h_b = hasher.digest()

    signature = sender.signing_key.sign(signed_message(h_h, prefix.wrapped_hash, h_b, 2))
    out.write(signature)
    written += len(signature)
    return SealResult(h_h, prefix.wrapped_hash, h_b, content_length, total, written, prefix.header)

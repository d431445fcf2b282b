"""``verify_envelope`` fed chunk by chunk: one pass over an upload as it arrives.

The gateway receives an envelope as a stream of chunks. Instead of spooling it and
reading the spool again to check it, it feeds every chunk to an :class:`EnvelopeVerifier`
on its way to the blob store: the prefix (magic, header, wrapped keys) is parsed as soon
as its bytes have arrived, so a wrong upload is refused early; the body's framing is
checked and ``hB`` computed as the bytes pass, once; at the end the sender's signature
is checked. No byte is kept beyond the prefix and one partial frame length or signature.

The checks are ``envelope_format``'s own (``read_prefix``, ``FrameCheck``, ``resolve``,
``verify_signature``), applied in the order ``verify_envelope`` applies them and with
the same size accounting, so every malformed, truncated, oversized or tampered
envelope is refused with the class (and code) ``verify_envelope`` raises for it,
whatever the chunk boundaries (tests/keys/protocol/test_envelope_verify_stream.py).

Hashing runs inline, on the caller's thread, one chunk at a time: the gateway feeds
64 KiB chunks, a few tens of microseconds each, so the event loop never waits on a
whole body, and no hashing thread is started per upload.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from keys.crypto.envelope_stream import Buffer
from keys.crypto.hash_thread import IncrementalHash
from keys.crypto.keypairs import SIGNATURE_BYTES, VerifyKey
from keys.errors import EnvelopeTooLarge, EnvelopeTrailingData, EnvelopeTruncated
from keys.protocol.envelope import VerifiedEnvelope
from keys.protocol.envelope_format import (
    SS_HEADER_BYTES,
    BodyScan,
    EnvelopePrefix,
    FrameCheck,
    FrameReader,
    SenderResolver,
    body_hash_state,
    read_prefix,
    resolve,
    verify_signature,
)

__all__ = ["EnvelopeVerifier"]

# What the verifier waits for next, in stream order.
_SS_HEADER, _LENGTH, _FRAME, _SIGNATURE, _DONE = range(5)


class _NeedMore(Exception):
    """The prefix is not complete yet: parse again once ``need`` bytes have arrived."""

    def __init__(self, need: int) -> None:
        self.need = need


class _PrefixReader(FrameReader):
    """``FrameReader`` over the bytes received so far. A read past them is "wait for
    more" until the stream has ended, and a truncation afterwards — with the size limit
    checked first, as ``FrameReader`` does."""

    def __init__(self, data: bytes, *, max_size: int | None, ended: bool) -> None:
        super().__init__(io.BytesIO(data), max_size=max_size)
        self._have = len(data)
        self._limit = max_size
        self._ended = ended

    def exact(self, n: int) -> bytes:
        want = self.offset + n
        within_limit = self._limit is None or want <= self._limit
        if want > self._have and within_limit and not self._ended:
            raise _NeedMore(want)
        return super().exact(n)


class _Length:
    """The one frame length ``FrameCheck.next_length`` reads (already received)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def u32(self) -> int:
        return self.value


class EnvelopeVerifier:
    """Check an envelope fed in pieces: ``feed`` every chunk, then ``verify``.

    ``resolve_sender``, when given here, is asked as soon as the header has arrived
    (where ``verify_envelope`` asks it); otherwise :meth:`verify` takes it at the end.
    ``feed`` raises the first violation the bytes so far prove; nothing is trusted
    before :meth:`verify` returned.
    """

    def __init__(
        self,
        resolve_sender: SenderResolver | None = None,
        *,
        max_size: int | None = None,
    ) -> None:
        self._resolver = resolve_sender
        self._max_size = max_size
        self._sender_key: VerifyKey | None = None
        self.prefix: EnvelopePrefix | None = None
        self._buffer = bytearray()  # the prefix until parsed, then a partial length/signature
        self._need = 0  # bytes of prefix to have before parsing again
        self.offset = 0  # bytes consumed by the checks (prefix included once parsed)
        self._state = _SS_HEADER
        self._left = 0  # bytes still to pass in the current section
        self._frames = FrameCheck()
        self._hash: IncrementalHash | None = None
        self._body: BodyScan | None = None
        self._signature = b""
        self._ended = False

    # --- feeding ---------------------------------------------------------------------------
    def feed(self, data: Buffer) -> None:
        """Take the next bytes of the envelope (in order); raise on the first fault."""
        view = memoryview(data).cast("B")
        if self.prefix is None:
            self._buffer += view
            if len(self._buffer) < self._need:
                return
            if not self._parse_prefix():
                return
            view, self._buffer = memoryview(bytes(self._buffer)), bytearray()
        self._walk(view)

    def _parse_prefix(self, *, ended: bool = False) -> bool:
        reader = _PrefixReader(bytes(self._buffer), max_size=self._max_size, ended=ended)
        try:
            prefix = read_prefix(reader)
        except _NeedMore as more:
            self._need = more.need
            return False
        if self._resolver is not None:
            self._sender_key = resolve(self._resolver, prefix.header.sender)
        self.prefix = prefix
        self.offset = reader.offset
        del self._buffer[: reader.offset]
        self._hash = body_hash_state(prefix.version)
        self._enter(_SS_HEADER, SS_HEADER_BYTES)
        return True

    def _enter(self, state: int, size: int) -> None:
        # Threat: an endless or oversized envelope. The limit is checked when a section's
        # size becomes known, before its bytes arrive — where verify_envelope's reader
        # checks it — so a frame claiming more than the limit is refused at once.
        if self._max_size is not None and self.offset + size > self._max_size:
            raise EnvelopeTooLarge("envelope exceeds the size limit")
        self._state, self._left = state, size
        self.offset += size

    def _walk(self, view: memoryview) -> None:
        hash_from = 0
        pos = 0
        while pos < len(view):
            if self._state == _DONE:
                self._hash_span(view, hash_from, pos)
                raise EnvelopeTrailingData("bytes follow the signature")
            take = min(self._left, len(view) - pos)
            if self._state in (_LENGTH, _SIGNATURE):
                self._buffer += view[pos : pos + take]
            pos += take
            self._left -= take
            if self._left:
                continue
            if self._state == _SS_HEADER or self._state == _FRAME:
                self._enter(_LENGTH, 4)
            elif self._state == _LENGTH:
                clen = self._frames.next_length(_Length(int.from_bytes(self._buffer, "big")))
                self._buffer.clear()
                if clen:
                    self._enter(_FRAME, clen)
                else:  # the end sentinel: the body section, and hB, are complete
                    self._hash_span(view, hash_from, pos)
                    hash_from = len(view)
                    self._frames.check_end()
                    self._body = self._finish_hash()
                    self._enter(_SIGNATURE, SIGNATURE_BYTES)
            else:  # the signature
                self._signature = bytes(self._buffer)
                self._buffer.clear()
                self._state = _DONE
        if self._body is None:
            self._hash_span(view, hash_from, pos)

    def _hash_span(self, view: memoryview, start: int, end: int) -> None:
        if self._hash is not None and end > start:
            self._hash.update(view[start:end])

    def _finish_hash(self) -> BodyScan:
        if self._hash is None:
            raise RuntimeError("the body hash starts with the body")
        digest = self._hash.digest()
        self._hash = None
        return BodyScan(digest, self._frames.total, self._frames.chunks)

    # --- the end ---------------------------------------------------------------------------
    def finish(self) -> None:
        """The stream has ended: refuse a truncated envelope (idempotent)."""
        if self._ended:
            return
        if self.prefix is None:
            self._parse_prefix(ended=True)  # raises: the prefix never completed
        self._ended = True
        if self._state != _DONE:
            raise EnvelopeTruncated("the envelope ends early: it was truncated")

    def verify(self, resolve_sender: Callable[..., VerifyKey] | None = None) -> VerifiedEnvelope:
        """After the whole stream: the sender's signature over ``hH ‖ hW ‖ hB``.

        ``resolve_sender`` is the verified directory's lookup, unless one was given at
        construction. Returns what ``verify_envelope`` returns for the same bytes.
        """
        self.finish()
        prefix, body = self.prefix, self._body
        if prefix is None or body is None:
            raise RuntimeError("finish() refuses an envelope without prefix or body")
        key = self._sender_key
        if key is None:
            if resolve_sender is None:
                raise TypeError("verify() needs the sender resolver")
            key = self._sender_key = resolve(resolve_sender, prefix.header.sender)
        verify_signature(key, prefix, body, self._signature)
        return VerifiedEnvelope(
            header=prefix.header,
            wrapped_kids=tuple(kid for kid, _ in prefix.wrapped),
            size=self.offset,
            header_hash=prefix.header_hash,
            sender_fingerprint=key.fingerprint(),
        )

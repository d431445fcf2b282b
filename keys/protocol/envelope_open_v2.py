"""Envelope v2, recipient side: one pass over the ciphertext (docs/protocol.md, "Open v2").

The envelope is read once. The own wrapped key is unwrapped first and checked twice —
``hH`` inside the box (a box moved from another header) and the header's commitment to
``K`` (a sender giving co-recipients different keys) — then every chunk is decrypted
into a private temporary file while the same bytes are hashed for ``hB``. Nothing is
released before the signature over the whole has verified: the plaintext sits in an
unnamed 0600 file (``O_TMPFILE``; elsewhere a 0600 file inside a 0700 directory) that
only the final link or rename gives the destination's name; on any failure it is
destroyed.

Threats and where they are met:
- altered header, keys or body → the signature over ``hH ‖ hW ‖ hB``; decryption before
  it only ever writes into the private temporary file;
- one body decrypting to different plaintexts for co-recipients → the key commitment:
  every recipient accepts only the ``K`` the signed header commits to, and one ``K``,
  one ciphertext and one ``ad`` give one plaintext;
- a co-recipient (who knows ``K``) substituting chunks → it can make chunks that
  authenticate under ``K``, but not a sender signature over the changed ``hB``;
- the file changing while it is read → there is no second read: what is hashed is the
  very buffer that is decrypted;
- truncation, reordering, dropping or splicing chunks → secretstream's counter and
  FINAL tag, ``ad = hH`` and the framing rules (``FrameCheck``);
- a second plaintext form (non-zero padding, an inconsistent trailer) → refused;
- memory exhaustion → 1 MiB read blocks, ≤ 512 KiB of plaintext waiting to be written,
  a few batches queued for the hashing thread.

Error reporting: framing errors are raised where they are found (the gateway sees the
same ones). Anything the key or the decryption finds wrong is held back until the
signature is checked: an envelope altered in transit is ``envelope_signature_invalid``
as in v1, and only a sender-signed bad envelope gets the finer code.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import secrets
import shutil
import tempfile
from collections import deque
from pathlib import Path

from keys.crypto.envelope_v2_stream import Pull, key_commitment
from keys.crypto.hash_thread import ThreadedHasher
from keys.crypto.keypairs import DeviceKeyPair, KeyId, VerifyKey
from keys.crypto.sodium import (
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)
from keys.errors import (
    EnvelopeBodyInvalid,
    EnvelopeError,
    EnvelopeMalformed,
    EnvelopeTruncated,
    EnvelopeWrappedKeyInvalid,
)
from keys.protocol.envelope_format import (
    SS_HEADER_BYTES,
    BlockReader,
    BodyScan,
    EnvelopePrefix,
    FrameCheck,
    new_body_hasher,
    read_signature,
    same_hash,
    verify_signature,
)
from keys.protocol.padding import TRAILER_BYTES, padded_length

_TAG_MESSAGE: int = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: int = crypto_secretstream_xchacha20poly1305_TAG_FINAL
_KEY_BYTES = 32
_WRITE_BYTES = 1 << 19  # plaintext written ~512 KiB at a time (one writev)
_PROC_FD = "/proc/self/fd"
_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"


def unwrap(boxes: list[tuple[DeviceKeyPair, bytes]], header_hash: bytes) -> tuple[KeyId, bytes]:
    """The first box that opens with one of the device's keys and binds ``hH``."""
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


def _committed_key(
    boxes: list[tuple[DeviceKeyPair, bytes]], prefix: EnvelopePrefix
) -> tuple[KeyId, bytes]:
    kid, key = unwrap(boxes, prefix.header_hash)
    commitment = prefix.header.key_commitment
    # Threat: a malicious sender sealing different keys to co-recipients so one body
    # reads differently for each. Only the key the signed header commits to is used.
    if commitment is None or not same_hash(key_commitment(key), bytes.fromhex(commitment)):
        raise EnvelopeWrappedKeyInvalid("the wrapped key is not the key the header commits to")
    return kid, key


def _write_all(fd: int, pieces: list[bytes]) -> None:
    views = [memoryview(p) for p in pieces if p]
    while views:
        n = os.writev(fd, views[:1024])  # IOV_MAX is at least 1024 on Linux
        while views and n >= views[0].nbytes:
            n -= views[0].nbytes
            views.pop(0)
        if n:
            views[0] = views[0][n:]


def _nonzero_end(offset: int, data: memoryview) -> int:
    """End offset of the last non-zero byte of ``data`` (at ``offset``), or 0."""
    if not data.nbytes:
        return 0
    if data[-1]:
        return offset + data.nbytes  # content ends with a non-zero byte: no scan
    raw = bytes(data)
    if raw == bytes(len(raw)):
        # A whole chunk of padding (a 1 GiB body is followed by 32 MiB of it): one
        # memcmp, where rstrip would test the 64 KiB byte by byte (≈ 30× slower).
        return 0
    kept = len(raw.rstrip(b"\0"))
    return offset + kept if kept else 0


class _Plaintext:
    """Decrypted chunks on their way to the file, and what the padding checks need.

    The last two chunks are kept (≤ 128 KiB): only at the end is it known where the
    8-byte trailer starts (it may straddle them) and so which bytes are padding.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.worker: ThreadedHasher | None = None  # writes go there while it runs
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._recent: deque[tuple[int, bytes]] = deque()
        self._nonzero_end = 0  # over the chunks no longer in _recent
        self.length = 0

    def add(self, plain: bytes) -> None:
        self._recent.append((self.length, plain))
        if len(self._recent) > 2:
            offset, old = self._recent.popleft()
            self._nonzero_end = max(self._nonzero_end, _nonzero_end(offset, memoryview(old)))
        self.length += len(plain)
        self._pending.append(plain)
        self._pending_bytes += len(plain)
        if self._pending_bytes >= _WRITE_BYTES:
            self.flush()

    def flush(self) -> None:
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        if self.worker is not None:
            # Written by the hashing thread, in order, overlapping decryption here; the
            # caller's ``digest`` waits for every write before anything is released.
            self.worker.also(functools.partial(_write_all, self._fd, pending))
        else:
            _write_all(self._fd, pending)

    def content_length(self) -> int:
        """Check the padding and the trailer; the content length they give."""
        padded = self.length
        trailer_at = padded - TRAILER_BYTES
        tail = b"".join(p for _, p in self._recent)
        nonzero_end = self._nonzero_end
        for offset, plain in self._recent:
            before_trailer = memoryview(plain)[: max(0, trailer_at - offset)]
            nonzero_end = max(nonzero_end, _nonzero_end(offset, before_trailer))
        content_length = int.from_bytes(tail[-TRAILER_BYTES:], "little")
        # One plaintext form: the trailer must give back P and the padding must be zeros.
        if content_length > trailer_at or padded_length(content_length) != padded:
            raise EnvelopeBodyInvalid("the padding trailer is inconsistent")
        if nonzero_end > content_length:
            raise EnvelopeBodyInvalid("the padding is not zeros")
        return content_length


def _decrypt(
    reader: BlockReader, key: bytes | None, header_hash: bytes, plaintext: _Plaintext
) -> tuple[BodyScan, EnvelopeError | None]:
    """Hash the body section and, while the key is good, decrypt it into ``plaintext``.

    Returns ``hB`` (with the framing figures) and the first decryption failure, which the
    caller reports only once the signature has been checked.
    """
    failure: EnvelopeError | None = None
    final = False
    frames = FrameCheck()
    with new_body_hasher(2) as hasher:
        plaintext.worker = hasher
        try:
            reader.start_tap(hasher)  # hashes the very blocks the views below point into
            ss_header = reader.exact(SS_HEADER_BYTES)
            stream = Pull(key, ss_header) if key is not None else None
            while (clen := frames.next_length(reader)) != 0:
                if stream is None:
                    reader.skip(clen)  # still hashed: the signature decides what we report
                    continue
                cipher = bytes(reader.view(clen))  # the public binding takes bytes only
                try:
                    if final:
                        raise EnvelopeMalformed("a chunk follows the FINAL chunk")
                    # Altered, reordered, dropped or spliced from another body → refused.
                    plain, tag = stream.pull(cipher, header_hash)
                    if tag == _TAG_FINAL:
                        final = True
                    elif tag != _TAG_MESSAGE:
                        raise EnvelopeBodyInvalid("unexpected secretstream tag")
                except EnvelopeError as exc:
                    failure, stream = exc, None
                    continue
                plaintext.add(plain)
            reader.stop_tap()
            frames.check_end()
            scan = BodyScan(hasher.digest(), frames.total, frames.chunks)  # waits for writes
        finally:
            plaintext.worker = None  # the worker is joined at the end of this block
    if failure is None and key is not None and not final:
        failure = EnvelopeTruncated()
    return scan, failure


def _private_output(dest: Path) -> tuple[int, Path | None]:
    """A file for the plaintext that no other local user can open: (fd, its folder).

    Threat: another local user (or a sync or backup tool) reading, linking or watching
    the plaintext before the signature has verified. Where the filesystem allows it
    (Linux ``O_TMPFILE``), the file has no name at all until ``_release`` links it (only
    through this process's own descriptor, which another user cannot reach), and
    closing the descriptor on a failure destroys it even if this process is killed.
    Elsewhere: a 0600 file inside a private 0700 folder, ``.<dest>.<random>.part``,
    which ``clients.sdk.leftovers`` sweeps after a crash. Folder is ``None`` for the first.
    """
    flags = os.O_WRONLY | os.O_CLOEXEC
    unnamed = getattr(os, "O_TMPFILE", 0)
    if unnamed and os.path.isdir(_PROC_FD):
        try:
            return os.open(dest.parent, flags | unnamed, 0o600), None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    try:
        fd = os.open(work / "content", flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return fd, work


def _release(fd: int, work: Path | None, dest: Path) -> None:
    """Give the verified plaintext its name, atomically: all of it or nothing."""
    if work is not None:
        os.replace(work / "content", dest)
        with contextlib.suppress(OSError):
            os.rmdir(work)
        return
    # linkat(2) with AT_SYMLINK_FOLLOW of the descriptor's /proc link, as open(2)
    # documents for O_TMPFILE. (os.link calls plain link(2), which does not follow the
    # link, unless a directory descriptor is given.)
    source = f"{_PROC_FD}/{fd}"
    folder = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(FileExistsError):
            os.link(source, dest.name, dst_dir_fd=folder, follow_symlinks=True)
            return
        # The destination exists: link under a temporary name (swept after a crash,
        # like the folder), then rename it over the destination.
        while True:
            temp = f".{dest.name}.{_random_name()}.part"
            try:
                os.link(source, temp, dst_dir_fd=folder, follow_symlinks=True)
                break
            except FileExistsError:
                continue
        try:
            os.replace(temp, dest.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=folder)
            raise
    finally:
        os.close(folder)


def _random_name() -> str:
    # The alphabet and length of tempfile's names, which clients.sdk.leftovers matches.
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(8))


def open_one_pass(
    reader: BlockReader,
    prefix: EnvelopePrefix,
    sender_key: VerifyKey,
    boxes: list[tuple[DeviceKeyPair, bytes]],
    dest_path: Path,
    *,
    durable: bool,
) -> tuple[KeyId, int]:
    """Decrypt the body after ``prefix`` into ``dest_path``; (key used, content length)."""
    held_back: EnvelopeError | None = None
    kid: KeyId | None = None
    key: bytes | None = None
    try:
        kid, key = _committed_key(boxes, prefix)
    except EnvelopeError as exc:
        held_back = exc  # reported after the signature check (module docstring)
    fd, work = _private_output(dest_path)
    try:
        try:
            plaintext = _Plaintext(fd)
            # The cipher runs here; reads, the hash and the writes on other threads.
            with reader.reading_ahead():
                body, failure = _decrypt(reader, key, prefix.header_hash, plaintext)
                signature = read_signature(reader)
            verify_signature(sender_key, prefix, body, signature)
            # Verified: the sender signed exactly these bytes. What is wrong now was
            # sealed that way (or is a key that is not ours to use).
            problem = held_back or failure
            if problem is not None:
                raise problem
            plaintext.flush()
            content_length = plaintext.content_length()
            os.ftruncate(fd, content_length)
            if durable:
                os.fsync(fd)
            _release(fd, work, dest_path)
        finally:
            os.close(fd)  # an unnamed file not yet linked is freed here
    except BaseException:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        raise
    if kid is None:  # unreachable: a missing key was raised above
        raise EnvelopeWrappedKeyInvalid()
    return kid, content_length

"""Seal a body into a temp file and open a downloaded envelope (blocking; run in a thread).

Bounded memory both ways: ``keys.protocol.envelope.seal`` streams the body one 64 KiB chunk at
a time into a temp file; the Content-Digest is a second streaming pass over that file
(the digest has to be in the signed headers before the first body byte is sent).
Temp files are created 0600 (``mkstemp``) in the spool directory and always removed by
the caller: an envelope is ciphertext, but it still reveals size and routing.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from keys.crypto.keypairs import DeviceKeyPair, DevicePublicKeys
from keys.protocol.envelope import EnvelopeHeader, SealResult, SenderResolver, open_envelope, seal
from keys.protocol.envelope import OpenedEnvelope as KeysOpened
from keys.protocol.httpsig import ContentDigester

Body = Path | BinaryIO | bytes
_READ = 1 << 20


@dataclass(frozen=True)
class SealedFile:
    path: Path
    result: SealResult
    digest: str  # the Content-Digest header value of the whole file


def temp_path(spool_dir: Path | None, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=".stafett-", suffix=suffix, dir=spool_dir)
    os.close(fd)
    return Path(name)


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def seal_to_file(
    header: EnvelopeHeader,
    body: Body,
    recipients: Sequence[DevicePublicKeys],
    sender: DeviceKeyPair,
    spool_dir: Path | None,
) -> SealedFile:
    path = temp_path(spool_dir, ".envelope")
    try:
        with path.open("wb") as out:
            if isinstance(body, Path):
                with body.open("rb") as src:
                    result = seal(header, src, recipients, sender, out)
            elif isinstance(body, bytes | bytearray):
                result = seal(header, io.BytesIO(bytes(body)), recipients, sender, out)
            else:
                result = seal(header, body, recipients, sender, out)
        return SealedFile(path, result, file_digest(path))
    except BaseException:
        remove(path)
        raise


def file_digest(path: Path) -> str:
    digester = ContentDigester()
    with path.open("rb") as src:
        while chunk := src.read(_READ):
            digester.update(chunk)
    return digester.header()


def open_to(
    envelope: Path,
    keypairs: Sequence[DeviceKeyPair],
    resolver: SenderResolver,
    dest: Path,
) -> KeysOpened:
    return open_envelope(envelope, list(keypairs), resolver, dest)

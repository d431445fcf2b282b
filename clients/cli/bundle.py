"""The plaintext inside an envelope: a text and/or files, packed as one tar stream.

Members: ``message.txt`` (the text, UTF-8) and ``files/<name>`` (attachments). Packing
streams file by file into a 0600 temp file in the device's state directory (the SDK
then seals it in 64 KiB chunks: memory stays bounded whatever the size).

Unpacking is defensive, because the sender controls the names: only regular files,
only those two places, plain base names (no ``/``, no ``..``, no leading dot, no control
characters), no duplicates. Threat: a sender (or a stolen sender key) writing outside
the output folder through ``../`` names, symlinks or device files (tar path traversal).
Everything is extracted into a temp folder that is renamed into place only when the
whole bundle unpacked: a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clients.local.bundle_format import FILES_DIR, TEXT_NAME, BundleInvalid, safe_name

__all__ = [
    "FILES_DIR",
    "TEXT_NAME",
    "BundleInvalid",
    "Unpacked",
    "pack",
    "remove",
    "safe_name",
    "unpack",
]


@dataclass(frozen=True)
class Unpacked:
    path: Path
    text: bool
    files: tuple[str, ...]


def pack(dest: Path, text: bytes | None, files: Sequence[Path]) -> None:
    """Write the bundle to ``dest`` (which the caller created 0600 and will remove)."""
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise BundleInvalid("two attachments have the same file name")
    for name in names:
        if not safe_name(name):
            raise BundleInvalid(f"unsupported attachment file name: {name!r}")
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        if text is not None:
            info = tarfile.TarInfo(TEXT_NAME)
            info.size = len(text)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(text))
        for path in files:
            info = tarfile.TarInfo(f"{FILES_DIR}/{path.name}")
            info.size = path.stat().st_size
            info.mode = 0o600
            with path.open("rb") as handle:
                tar.addfile(info, handle)


def unpack(bundle: Path, dest: Path) -> Unpacked:
    """Extract into ``dest`` (must not exist) atomically; refuse anything unexpected."""
    if dest.exists():
        raise BundleInvalid(f"{dest} already exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        os.chmod(tmp, 0o700)
        (tmp / FILES_DIR).mkdir(mode=0o700)
        seen: set[str] = set()
        text = False
        with _open_tar(bundle) as tar:
            for member in tar:
                target = _target(member, seen)
                source = tar.extractfile(member)
                if source is None:
                    raise BundleInvalid("a bundle member has no data")
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
                with source, os.fdopen(os.open(tmp / target, flags, 0o600), "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                text = text or target == TEXT_NAME
        if not (tmp / FILES_DIR).exists() or not any((tmp / FILES_DIR).iterdir()):
            (tmp / FILES_DIR).rmdir()
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = tuple(sorted(s.split("/", 1)[1] for s in seen if s != TEXT_NAME))
    return Unpacked(dest, text, files)


def _open_tar(bundle: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(bundle, "r:")
    except tarfile.TarError:
        raise BundleInvalid("the content is not a Stafett bundle") from None


def _target(member: tarfile.TarInfo, seen: set[str]) -> str:
    if not member.isreg():
        raise BundleInvalid("the bundle holds something other than regular files")
    name = member.name
    if name != TEXT_NAME:
        folder, sep, base = name.partition("/")
        if folder != FILES_DIR or not sep or not safe_name(base):
            raise BundleInvalid("the bundle holds an unsafe file name")
    if name in seen:
        raise BundleInvalid("the bundle holds a file twice")
    seen.add(name)
    return name


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

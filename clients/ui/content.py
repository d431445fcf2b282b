"""A decrypted message held in memory: its text and attachments, never a file.

The SDK decrypts into a 0600 file in the app's private folder; ``read_bundle`` reads
the tar bundle (``clients.local.bundle_format``: ``message.txt`` and ``files/<name>``)
into memory with the same defensive rules, and the caller deletes the file at once.
Threat: decrypted case files left on the officer's disk (the CLI's ``open`` leaves a
folder); here they exist only in this process until the receipt or the lock.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from clients.local.bundle_format import FILES_DIR, TEXT_NAME, BundleInvalid, safe_name

# A bound on what one opened message may hold in memory (the officer's laptop).
MAX_IN_MEMORY = 512 << 20


@dataclass
class OpenedContent:
    """What the page shows of one opened message; ``repr`` never shows content."""

    message_id: str
    sender: str
    sender_fingerprint: str
    category: str
    purpose: str
    consent_id: str
    header_hash: str
    expires: int
    in_reply_to: str | None
    reopened: bool
    text: str | None = field(default=None, repr=False)
    files: dict[str, bytes] = field(default_factory=dict, repr=False)

    def forget(self) -> None:
        """Drop the references (Python cannot wipe ``bytes``; the GC frees them)."""
        self.text = None
        self.files.clear()


def read_bundle(path: Path) -> tuple[str | None, dict[str, bytes]]:
    text: str | None = None
    files: dict[str, bytes] = {}
    total = 0
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 (closed by the `with` below)
    except tarfile.TarError:
        raise BundleInvalid("the content is not a Stafett bundle") from None
    with tar:
        for member in tar:
            # Threat: a sender (or stolen sender key) smuggling links, devices or
            # path tricks; only regular files in the two expected places are read.
            if not member.isreg():
                raise BundleInvalid("the bundle holds something other than regular files")
            total += member.size
            if total > MAX_IN_MEMORY:
                raise BundleInvalid("the message is too large to show here")
            source = tar.extractfile(member)
            if source is None:
                raise BundleInvalid("a bundle member has no data")
            data = source.read()
            if member.name == TEXT_NAME and text is None:
                text = data.decode("utf-8", errors="replace")
                continue
            folder, sep, base = member.name.partition("/")
            if folder != FILES_DIR or not sep or not safe_name(base) or base in files:
                raise BundleInvalid("the bundle holds an unsafe or repeated file name")
            files[base] = data
    return text, files


@dataclass(frozen=True)
class Upload:
    """A file the officer added in the browser (aiohttp keeps it in an unnamed temp file)."""

    name: str
    handle: IO[bytes]
    size: int


def pack_upload(dest: Path, text: bytes | None, files: list[Upload]) -> None:
    """Write the bundle (the CLI's format, so either tool opens it) to ``dest``, which
    the caller created 0600 in the private folder and removes after sealing."""
    names = [f.name for f in files]
    if len(set(names)) != len(names) or not all(safe_name(n) for n in names):
        raise BundleInvalid("unsupported or repeated attachment file name")
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        if text is not None:
            info = tarfile.TarInfo(TEXT_NAME)
            info.size, info.mode = len(text), 0o600
            tar.addfile(info, io.BytesIO(text))
        for upload in files:
            info = tarfile.TarInfo(f"{FILES_DIR}/{upload.name}")
            info.size, info.mode = upload.size, 0o600
            upload.handle.seek(0)
            tar.addfile(info, upload.handle)

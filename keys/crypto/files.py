"""Atomic, durable file writes shared by the keystore and both command-line tools.

Threats defended here:
- a crash or power cut mid-write leaving a half-written keystore, config or directory
  log (losing every device key, or a log that no longer verifies): the bytes go to a
  temp file in the same directory, are fsynced, renamed over the target, and the
  rename itself is fsynced through the directory;
- another local user reading a private file, even briefly: the mode is set on the open
  descriptor before any byte is written, whatever the umask or platform default.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644  # trust roots, directory logs, checkpoints: meant to be handed out


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably, mode 0600."""
    write_atomically(path, data, mode=PRIVATE_MODE)


def write_public(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably, mode 0644 (not secret)."""
    write_atomically(path, data, mode=PUBLIC_MODE)


def write_atomically(path: Path, data: bytes, *, mode: int, sync_dir: bool = True) -> None:
    """Temp file ``mode`` + fsync + rename + directory fsync: the old file or the new.

    ``sync_dir=False`` leaves the directory's fsync to a caller that groups several
    renames in one directory under one fsync (``fsync_path``); the file's bytes are
    fsynced before the rename either way, so the name never holds a torn file."""
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp already creates 0600; say the mode explicitly before any byte is
        # written so a different umask or platform default can never expose the file.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if sync_dir:
        # Persist the rename itself (the directory entry), not only the file's bytes.
        fsync_path(directory)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by name (a directory: the names in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

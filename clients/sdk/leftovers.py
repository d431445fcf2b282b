"""Sweep decrypted leftovers of an interrupted open out of an output folder.

Decryption writes into temp files next to the destination and renames them only when
complete (``keys.protocol.envelope_open``: ``.<dest name>.<8 random>.part``, 0600; for
envelope v2 that name is a private 0700 folder holding the file, where the filesystem
has no ``O_TMPFILE``; with it, v2 leaves nothing named), and the CLI
unpacks into a temp folder (``cli_bundle``: ``.<message id>.<8 random>/``) next to its
bundle (``.<message id>.bundle``). A crash, a kill or a power cut between the two leaves
partial *plaintext* behind, in a folder an officer may share or back up. Threat:
case content outliving its handover in a forgotten dot-file.

Only names of exactly our own patterns are touched, only entries owned by this user,
never through a symlink. A second open of the *same* message into the *same* folder at
the same moment loses its temp file and fails cleanly (its rename finds nothing); it
never leaves anything behind.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

# tempfile.mkstemp/mkdtemp: 8 characters from "abcdefghijklmnopqrstuvwxyz0123456789_".
_RANDOM = r"[a-z0-9_]{8}"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# What `stafett open` leaves in --out DIR: the SDK's decrypt temp of the bundle, the
# decrypted bundle itself, and the unpack temp folder.
_CLI_FILES = re.compile(rf"\.\.{_UUID}\.bundle\.{_RANDOM}\.part|\.{_UUID}\.bundle")
_CLI_DIRS = re.compile(rf"\.{_UUID}\.{_RANDOM}|\.\.{_UUID}\.bundle\.{_RANDOM}\.part")


def partial_outputs_of(dest: Path) -> re.Pattern[str]:
    """The names ``keys.protocol.envelope_open`` gives its temp files for ``dest``."""
    return re.compile(re.escape(f".{dest.name}.") + _RANDOM + r"\.part")


def remove_partial_outputs(dest: Path) -> int:
    """Remove leftover decrypt temp files of ``dest`` (SDK ``fetch``); returns how many."""
    pattern = partial_outputs_of(dest)  # a v1 temp file or a v2 private temp folder
    return _sweep(dest.parent, pattern, pattern)


def remove_cli_leftovers(out_dir: Path) -> int:
    """Remove every leftover of an interrupted ``stafett open`` in ``out_dir``."""
    return _sweep(out_dir, _CLI_FILES, _CLI_DIRS)


def _sweep(folder: Path, files: re.Pattern[str], dirs: re.Pattern[str] | None) -> int:
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    uid = os.getuid()
    removed = 0
    for entry in entries:
        is_file = files.fullmatch(entry.name) is not None
        is_dir = dirs is not None and dirs.fullmatch(entry.name) is not None
        if not (is_file or is_dir):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if info.st_uid != uid:
                continue  # not ours: another user's file is not ours to delete
            if is_file and stat.S_ISREG(info.st_mode):
                os.unlink(entry.path)
            elif is_dir and stat.S_ISDIR(info.st_mode):
                # rmtree never follows symlinks inside the tree.
                shutil.rmtree(entry.path)
            else:
                continue  # a symlink or device under our name: leave it alone
        except FileNotFoundError:
            continue  # gone meanwhile (a concurrent open finished or cleaned up)
        removed += 1
    return removed

"""The bridge's folders and the durable file operations everything here relies on.

    ROOT/outbox/            the case system drops <drop>.stafett.json + documents here
    ROOT/outbox/sent/<drop>/    sidecar, documents, message.json, later receipt.json
    ROOT/outbox/failed/<drop>/  sidecar, documents, reason.txt (sv + en), reason.json
    ROOT/inbox/<message_id>/    one handover: documents/, metadata.json,
                                handover.json, handover.html (appears by rename)
    ROOT/state/             the bridge's own journal (not for the case system):
        outgoing/<id>.json, outgoing/<id>.envelope, incoming/<id>.json, health.json, lock

Everything the bridge promises ("sent exactly once", "on disk before the receipt")
rests on: write to a temp name, fsync the file, rename, fsync the directory. A rename
is atomic on one file system, so ROOT must be one file system (a case system's share
mounted elsewhere must deliver into ROOT/outbox, not be ROOT/outbox via a second mount).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keys.crypto import files

_MAX_STATE = 1 << 20


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def sent(self) -> Path:
        return self.outbox / "sent"

    @property
    def failed(self) -> Path:
        return self.outbox / "failed"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def outgoing(self) -> Path:
        return self.state / "outgoing"

    @property
    def incoming(self) -> Path:
        return self.state / "incoming"

    @property
    def health(self) -> Path:
        return self.state / "health.json"

    def create(self) -> None:
        for folder in (self.outbox, self.sent, self.failed, self.inbox):
            folder.mkdir(parents=True, exist_ok=True)
        for folder in (self.state, self.outgoing, self.incoming):
            # The journal names message ids and consent ids: metadata about people.
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file and folder under ``path`` (deepest first), then ``path``."""
    for folder, _dirs, names in os.walk(path, topdown=False):
        for name in names:
            fsync_file(Path(folder) / name)
        fsync_dir(Path(folder))


def write_json(path: Path, value: Any, *, private: bool = True) -> None:
    data = json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n"
    files.write_atomically(path, data, mode=0o600 if private else 0o644)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            value = json.loads(handle.read(_MAX_STATE))
    except FileNotFoundError:
        return None
    return value if isinstance(value, dict) else None


def move(sources: list[Path], target_dir: Path) -> None:
    """Move files into ``target_dir`` durably (one fsync per folder, not per file); a
    file already moved is not an error (the step is repeated after a crash)."""
    moved_from = set()
    for source in sources:
        with contextlib.suppress(FileNotFoundError):
            os.rename(source, target_dir / source.name)
            moved_from.add(source.parent)
    if moved_from:
        fsync_dir(target_dir)
        for folder in moved_from:
            fsync_dir(folder)


def free_name(folder: Path, stem: str, tag: str) -> Path:
    """``folder/stem``, or ``folder/stem-tag[-n]`` when a drop of that name is there."""
    candidate = folder / stem
    n = 0
    while candidate.exists():
        n += 1
        candidate = folder / (f"{stem}-{tag}" if n == 1 else f"{stem}-{tag}-{n}")
    return candidate

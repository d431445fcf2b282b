"""The bridge's folders and the durable file operations everything here relies on.

    ROOT/outbox/            the case system drops <drop>.stafett.json + documents here
    ROOT/outbox/sent/<drop>/    sidecar, documents, message.json, later receipt.json
    ROOT/outbox/failed/<drop>/  sidecar, documents, reason.txt (sv + en), reason.json
    ROOT/inbox/<message_id>/    one handover: documents/, metadata.json,
                                handover.json, handover.html (appears by rename)
    ROOT/quarantine/<message_id>/  reason.txt (sv + en), reason.json: a message
                                addressed to the unit that could not be verified or
                                decrypted; never in the inbox, never receipted
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
    def quarantine(self) -> Path:
        return self.root / "quarantine"

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
        for folder in (self.outbox, self.sent, self.failed, self.inbox, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)
        for folder in (self.state, self.outgoing, self.incoming):
            # The journal names message ids and consent ids: metadata about people.
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)


fsync_path = files.fsync_path  # a file or a folder by name


def fsync_tree(path: Path) -> None:
    """fsync every file and folder under ``path`` (deepest first), then ``path``."""
    for folder, _dirs, names in os.walk(path, topdown=False):
        for name in names:
            if not os.path.islink(Path(folder) / name):  # a link's target is not ours
                fsync_path(Path(folder) / name)
        fsync_path(Path(folder))


def json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def _json_bytes(value: Any) -> bytes:
    return json_text(value).encode()


def write_json(path: Path, value: Any, *, private: bool = True, sync_dir: bool = True) -> None:
    """Replace ``path`` atomically: temp file, fsync, rename, fsync the folder.

    ``sync_dir=False`` leaves the folder's fsync to the caller, who groups several
    renames in one folder under one fsync (each fsync costs a disk flush; about half of
    a drop's time on a VM). The file's bytes are always fsynced before the rename, so
    after a power cut the name holds the old content or the new, never a torn file.
    """
    files.write_atomically(
        path, _json_bytes(value), mode=0o600 if private else 0o644, sync_dir=sync_dir
    )


def write_text(path: Path, text: str, *, private: bool = True) -> None:
    """Create ``path`` with ``text``, no fsync: for files inside a folder that is
    fsynced as a whole afterwards (``fsync_tree``) before anyone relies on it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(path, flags, 0o600 if private else 0o644), "wb") as handle:
        handle.write(text.encode())


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            value = json.loads(handle.read(_MAX_STATE))
    except FileNotFoundError:
        return None
    return value if isinstance(value, dict) else None


def move(sources: list[Path], target_dir: Path, *, sync: bool = True) -> set[Path]:
    """Move files into ``target_dir`` durably (one fsync per folder, not per file); a
    file already moved is not an error (the step is repeated after a crash).

    Returns the folders whose entries changed; with ``sync=False`` the caller fsyncs
    them (``fsync_dirs``) together with other renames into the same folders."""
    changed: set[Path] = set()
    for source in sources:
        with contextlib.suppress(FileNotFoundError):
            os.rename(source, target_dir / source.name)
            changed.update((source.parent, target_dir))
    if sync:
        fsync_dirs(changed)
    return changed


def fsync_dirs(folders: set[Path]) -> None:
    for folder in sorted(folders):
        fsync_path(folder)


def free_name(folder: Path, stem: str, tag: str) -> Path:
    """``folder/stem``, or ``folder/stem-tag[-n]`` when a drop of that name is there."""
    candidate = folder / stem
    n = 0
    while candidate.exists():
        n += 1
        candidate = folder / (f"{stem}-{tag}" if n == 1 else f"{stem}-{tag}-{n}")
    return candidate

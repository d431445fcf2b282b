"""Small JSON records in the device's state folder: ``<kind>/<id>.json``.

``sent/<id>.json`` (what this device sealed: the ``hH`` a receipt must name),
``opened/<id>.json`` (the ``hH`` of what it opened and verified) and
``consents/<id>.json`` (an oral consent's witness, note and salt). Every file is
written 0600 in a 0700 folder through ``keys.crypto.files`` (threat: another local
user reading which cases this device handles), and only ids that are lower-case UUIDs
name a file (threat: ``../`` in an id from the gateway or a form).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from keys.crypto.files import write_private

MAX_RECORD = 64 << 10


def is_record_id(value: str) -> bool:
    """Lower-case UUIDs only (message and consent ids are UUIDs)."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def record_path(home: Path, kind: str, record_id: str) -> Path:
    if not is_record_id(record_id):
        raise ValueError("not a record id")
    return home / kind / f"{record_id}.json"


def read_record(home: Path, kind: str, record_id: str) -> dict[str, Any] | None:
    """The record, or None when it is missing, unreadable or not an object."""
    if not is_record_id(record_id):
        return None
    try:
        with record_path(home, kind, record_id).open("rb") as handle:
            raw = handle.read(MAX_RECORD + 1)
        value = json.loads(raw) if len(raw) <= MAX_RECORD else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def save_record(home: Path, kind: str, record_id: str, value: dict[str, Any]) -> Path:
    """Write the record atomically (temp file 0600 + fsync + rename); returns its path."""
    path = record_path(home, kind, record_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, json.dumps(value, sort_keys=True, indent=1).encode() + b"\n")
    return path


def remove_record(home: Path, kind: str, record_id: str) -> None:
    record_path(home, kind, record_id).unlink(missing_ok=True)

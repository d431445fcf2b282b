"""The officer's state folder as the CLI lays it out (``clients.cli.state``), read and
written by the web app so that both tools see the same device.

Only what the web app needs: open the keystore (argon2id, slow: run in a thread), save
it after a directory sync changed it, and the small JSON records ``sent/<id>.json``
(what this device sealed: the ``hH`` a receipt must name) and ``opened/<id>.json`` (the
``hH`` of what it opened). Every file is written 0600 through ``keys.crypto.files`` (threat:
another local user reading which cases this device handles).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from clients.keys_admin.store import kdf_cost
from keys.crypto.files import write_private
from keys.crypto.keystore import KdfCost, Keystore, load_keystore, save_keystore

KEYSTORE = "keys.crypto.keystore"
_MAX_RECORD = 64 << 10


def open_keystore(home: Path, passphrase: str) -> Keystore:
    """Raises ``keys`` errors (wrong passphrase, corrupt) for the caller to translate."""
    # Threat: a stolen keystore written with a trivial KDF is cheap to brute-force; only
    # the test-suite setting (STAFETT_KDF_COST=test) may open such files (as the CLI).
    floor = None if kdf_cost() is KdfCost.TEST else KdfCost.INTERACTIVE
    return load_keystore(home / KEYSTORE, passphrase, min_cost=floor)


def save(home: Path, keystore: Keystore, passphrase: str) -> None:
    save_keystore(home / KEYSTORE, keystore, passphrase, cost=kdf_cost())


def is_message_id(value: str) -> bool:
    """Lower-case UUIDs only: ids also name files here (threat: ``../`` in an id)."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def record(home: Path, kind: str, message_id: str) -> dict[str, Any] | None:
    if not is_message_id(message_id):
        return None
    try:
        with (home / kind / f"{message_id}.json").open("rb") as handle:
            raw = handle.read(_MAX_RECORD + 1)
        value = json.loads(raw) if len(raw) <= _MAX_RECORD else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def save_record(home: Path, kind: str, message_id: str, value: dict[str, Any]) -> None:
    if not is_message_id(message_id):
        raise ValueError("not a message id")
    folder = home / kind
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(folder / f"{message_id}.json", json.dumps(value, sort_keys=True).encode())


def fresh_private_dir(path: Path) -> Path:
    """An empty 0700 folder: leftovers of a crashed earlier run are removed first
    (threat: decrypted bytes surviving a crash between decryption and reading)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def remove_private_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

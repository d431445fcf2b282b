"""The officer's state folder as the CLI lays it out (``clients.cli.state``), read and
written by the web app so that both tools see the same device.

Only what the web app needs: open the keystore (argon2id, slow: run in a thread), save
it after a directory sync changed it, and the small JSON records ``sent/<id>.json``
(what this device sealed: the ``hH`` a receipt must name) and ``opened/<id>.json`` (the
``hH`` of what it opened). Every file is written 0600 through ``keys.crypto.files`` (threat:
another local user reading which cases this device handles).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from clients.keys_admin.store import kdf_cost
from clients.local.records import is_record_id as is_message_id
from clients.local.records import read_record as record
from clients.local.records import save_record
from keys.crypto.keystore import KdfCost, Keystore, load_keystore, save_keystore

KEYSTORE = "keys.crypto.keystore"
__all__ = ["is_message_id", "open_keystore", "record", "save", "save_record"]


def open_keystore(home: Path, passphrase: str) -> Keystore:
    """Raises ``keys`` errors (wrong passphrase, corrupt) for the caller to translate."""
    # Threat: a stolen keystore written with a trivial KDF is cheap to brute-force; only
    # the test-suite setting (STAFETT_KDF_COST=test) may open such files (as the CLI).
    floor = None if kdf_cost() is KdfCost.TEST else KdfCost.INTERACTIVE
    return load_keystore(home / KEYSTORE, passphrase, min_cost=floor)


def save(home: Path, keystore: Keystore, passphrase: str) -> None:
    save_keystore(home / KEYSTORE, keystore, passphrase, cost=kdf_cost())


def fresh_private_dir(path: Path) -> Path:
    """An empty 0700 folder: leftovers of a crashed earlier run are removed first
    (threat: decrypted bytes surviving a crash between decryption and reading)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def remove_private_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

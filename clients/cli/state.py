"""The device's state directory (``--home`` / ``STAFETT_HOME``, default ``~/.stafett``).

Layout::

    keys.crypto.keystore      device key pairs, pinned admins, the city subject key and the last
                       verified directory checkpoint (keys.crypto.keystore: argon2id + MAC, 0600)
    config.json        {"v":1,"device","gateway","gateway_key","gateway_keys_added"}: not secret
    sent/<id>.json     what this device sealed (hH, recipient kids): a receipt is verified
                       against these, never against the gateway's word
    opened/<id>.json   hH of what this device opened and verified: what ``ack`` signs
    events.cursor      the last push event seq shown by ``watch``

The directory is created 0700 and every file in it 0600: ids, categories and consent
ids are metadata about people under threat (threat: another local user reading them).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients.cli.texts import Texts
from clients.keys_admin.store import kdf_cost
from clients.local import records
from keys.crypto import files
from keys.crypto.keystore import KdfCost, Keystore, load_keystore, save_keystore
from keys.errors import KeystoreCorrupt, KeystoreError, KeystoreWrongPassphrase

KEYSTORE = "keys.crypto.keystore"
CONFIG = "config.json"
MIN_PASSPHRASE = 12
_MAX_RECORD = 64 << 10


class CliFailure(Exception):
    """A user-facing failure: already translated, printed as one line, exit ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def default_home(env: dict[str, str] | None = None) -> Path:
    environ = os.environ if env is None else env
    value = environ.get("STAFETT_HOME")
    return Path(value) if value else Path.home() / ".stafett"


def write_private(path: Path, data: bytes) -> None:
    """Temp file 0600 + fsync + rename: never a half-written or world-readable file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    files.write_private(path, data)


def write_json(path: Path, value: Any) -> None:
    write_private(path, json.dumps(value, sort_keys=True, indent=1).encode() + b"\n")


def read_json(path: Path) -> Any:
    with path.open("rb") as handle:
        raw = handle.read(_MAX_RECORD + 1)
    if len(raw) > _MAX_RECORD:
        raise ValueError("file too large")
    return json.loads(raw)


def read_passphrase(texts: Texts, *, new: bool = False) -> str:
    """From ``STAFETT_PASSPHRASE`` or a prompt; never from argv (visible in ``ps``)."""
    value = os.environ.get("STAFETT_PASSPHRASE")
    if value is None:
        if not sys.stdin.isatty():
            raise CliFailure(texts("no_passphrase"))
        value = getpass.getpass(texts("passphrase_prompt"))
        if new and getpass.getpass(texts("passphrase_repeat")) != value:
            raise CliFailure(texts("passphrase_differs"))
    if new and len(value) < MIN_PASSPHRASE:
        raise CliFailure(texts("passphrase_short", n=MIN_PASSPHRASE))
    return value


@dataclass
class Home:
    """The opened state directory of one device."""

    root: Path
    texts: Texts
    gateway_override: str | None = None
    _keystore: Keystore | None = field(default=None, repr=False)
    _passphrase: str | None = field(default=None, repr=False)
    _saved_checkpoint: tuple[int, str] | None = None
    _saved_versions: tuple[int, ...] = ()

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def exists(self) -> bool:
        return self.path(KEYSTORE).exists()

    # --- config -----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        try:
            value = read_json(self.path(CONFIG))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            raise CliFailure(self.texts("file_missing", path=self.path(CONFIG))) from None
        return value if isinstance(value, dict) else {}

    def save_config(self, config: dict[str, Any]) -> None:
        write_json(self.path(CONFIG), {"v": 1, **config})

    def gateway_url(self) -> str:
        url = self.gateway_override or os.environ.get("STAFETT_GATEWAY_URL")
        url = url or self.config().get("gateway")
        if not isinstance(url, str) or not url:
            raise CliFailure(self.texts("no_gateway_url"), status=2)
        return url

    def gateway_key_b64(self) -> str | None:
        value = self.config().get("gateway_key")
        return value if isinstance(value, str) and value else None

    def gateway_keys_b64(self) -> list[str]:
        """The pinned gateway key first, then every key trusted since: announced by a
        trusted key (``clients.sdk.gateway_trust``) or pinned by ``stafett gateway-key
        pin``. Public keys: not secret, but what this device holds the gateway to."""
        config = self.config()
        added = config.get("gateway_keys_added")
        keys = [config.get("gateway_key"), *(added if isinstance(added, list) else [])]
        return [k for k in keys if isinstance(k, str) and k]

    def add_gateway_key(self, key_b64: str) -> None:
        """Trust one more gateway key from now on (the first one becomes the pin)."""
        config = self.config()
        if key_b64 in self.gateway_keys_b64():
            return
        if not self.gateway_key_b64():
            config["gateway_key"] = key_b64
        else:
            added = config.get("gateway_keys_added")
            config["gateway_keys_added"] = [*(added if isinstance(added, list) else []), key_b64]
        config.pop("v", None)
        self.save_config(config)

    # --- keystore ---------------------------------------------------------------------
    def keystore(self) -> Keystore:
        if self._keystore is None:
            if not self.exists:
                raise CliFailure(self.texts("no_home", home=self.root))
            passphrase = read_passphrase(self.texts)
            self._keystore = open_keystore(self.path(KEYSTORE), passphrase, self.texts, self.root)
            self._passphrase = passphrase
            self._remember_saved()
        return self._keystore

    def create_keystore(self, store: Keystore) -> None:
        if self.exists:
            raise CliFailure(self.texts("home_exists", home=self.root))
        passphrase = read_passphrase(self.texts, new=True)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        save_keystore(self.path(KEYSTORE), store, passphrase, cost=kdf_cost())
        self._keystore, self._passphrase = store, passphrase
        self._remember_saved()

    def save_keystore(self) -> None:
        if self._keystore is None or self._passphrase is None:
            return
        save_keystore(self.path(KEYSTORE), self._keystore, self._passphrase, cost=kdf_cost())
        self._remember_saved()

    def _remember_saved(self) -> None:
        if self._keystore is not None:
            self._saved_checkpoint = self._keystore.known_checkpoint
            self._saved_versions = tuple(sorted(self._keystore.keypairs))

    def save_keystore_if_changed(self) -> None:
        """Persist what a directory sync changed: the newest verified head (the
        fork/rollback anchor) and key versions shredded because the directory records
        them destroyed (the old keystore file is replaced, not left holding them)."""
        store = self._keystore
        if store is not None and (
            store.known_checkpoint != self._saved_checkpoint
            or tuple(sorted(store.keypairs)) != self._saved_versions
        ):
            self.save_keystore()

    # --- local records --------------------------------------------------------------------
    def record(self, kind: str, message_id: str) -> dict[str, Any] | None:
        return records.read_record(self.root, kind, message_id)

    def save_record(self, kind: str, message_id: str, value: dict[str, Any]) -> None:
        records.save_record(self.root, kind, message_id, value)

    def cursor(self) -> int:
        try:
            return int(self.path("events.cursor").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def save_cursor(self, seq: int) -> None:
        write_private(self.path("events.cursor"), f"{seq}\n".encode())


def open_keystore(path: Path, passphrase: str, texts: Texts, home: Path) -> Keystore:
    try:
        # Threat: a stolen keystore written with a trivial KDF is cheap to brute-force;
        # only the test-suite setting (STAFETT_KDF_COST=test) may open such files.
        floor = None if kdf_cost() is KdfCost.TEST else KdfCost.INTERACTIVE
        return load_keystore(path, passphrase, min_cost=floor)
    except KeystoreWrongPassphrase:
        raise CliFailure(texts("wrong_passphrase", home=home)) from None
    except KeystoreCorrupt as exc:
        raise CliFailure(texts("keystore_corrupt", home=home, code=exc.code)) from None
    except KeystoreError as exc:
        raise CliFailure(texts("keystore_corrupt", home=home, code=exc.code)) from None

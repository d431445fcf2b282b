"""The admin working directory behind ``stafett-keys``: files in, verified state out.

Layout of the directory (``--dir``)::

    admin.keystore    the admin's signing key and pinned admins (keys.crypto.keystore, 0600)
    trust-root.json   the pinned admin keys, {"v":1,"admins":{kid: b64}}: what devices
                      and the gateway are provisioned with
    directory.jsonl   the log, one canonical-JSON entry per line: the unit of exchange
                      (the gateway upload will read and write exactly this file)
    checkpoint.json   the newest signed checkpoint of that log

Every command re-verifies the whole log from the trust root before it trusts or extends
it. Threat: an admin signing a new entry on top of a log someone edited on disk (or a
synced copy from a hostile gateway), which would give the edit the admin's blessing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keys.crypto.canonical import NotCanonical, canonical_json, parse_canonical
from keys.crypto.files import write_public
from keys.crypto.keypairs import KeyId, SigningKey, VerifyKey
from keys.crypto.keystore import DEFAULT_COST, KdfCost, Keystore, load_keystore, save_keystore
from keys.errors import DirectoryError, KeysError, KeystoreError
from keys.protocol.checkpoint import Checkpoint
from keys.protocol.directory import Directory, DirectoryEntry

KEYSTORE = "admin.keystore"
TRUST_ROOT = "trust-root.json"
LOG = "directory.jsonl"
CHECKPOINT = "checkpoint.json"
_MAX_FILE = 64 << 20  # a directory of thousands of devices is a few MiB


class CliError(Exception):
    """A user-facing failure: printed as one line, never with a traceback."""


def read_file(path: Path, what: str, *, max_size: int | None = None) -> bytes:
    """The bytes of ``path``; a missing, unreadable or (over ``max_size``) oversized
    file is a one-line CliError naming ``what`` (threat: an export or log blown up to
    exhaust memory before any check runs)."""
    try:
        if max_size is not None and path.stat().st_size > max_size:
            raise CliError(f"{what} is too large: {path}")
        return path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise CliError(f"{what} cannot be read: {exc.strerror}") from None


def read_json(path: Path, what: str) -> Any:
    raw = read_file(path, what)
    try:
        return parse_canonical(raw.rstrip(b"\n"))
    except NotCanonical as exc:
        raise CliError(f"{what} is not canonical JSON: {exc}") from None


def write_json(path: Path, value: Any) -> None:
    write_public(path, canonical_json(value) + b"\n")


def read_log(path: Path) -> list[DirectoryEntry]:
    """Parse ``directory.jsonl`` (shape only; verification is ``Directory.extend``)."""
    try:
        if path.stat().st_size > _MAX_FILE:
            raise CliError("directory log is too large")
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        raise CliError(f"directory log not found: {path}") from None
    if lines and lines[-1] == b"":
        lines.pop()
    entries = []
    for number, line in enumerate(lines, start=1):
        try:
            entries.append(DirectoryEntry.from_json(parse_canonical(line)))
        except (NotCanonical, DirectoryError) as exc:
            raise CliError(f"{path.name} line {number}: {exc}") from None
    return entries


def write_log(path: Path, entries: list[DirectoryEntry]) -> None:
    write_public(path, b"".join(canonical_json(e.to_json()) + b"\n" for e in entries))


def trust_root_json(admins: dict[str, VerifyKey]) -> dict[str, Any]:
    return {"v": 1, "admins": {kid: key.b64() for kid, key in sorted(admins.items())}}


def parse_trust_root(obj: Any) -> dict[str, VerifyKey]:
    if (
        not isinstance(obj, dict)
        or set(obj) != {"v", "admins"}
        or obj["v"] != 1
        or not isinstance(obj["admins"], dict)
        or not obj["admins"]
    ):
        raise CliError('trust root must be {"v":1,"admins":{kid: key}} with at least one admin')
    try:
        return {str(KeyId.parse(k)): VerifyKey.from_b64(v) for k, v in obj["admins"].items()}
    except (KeysError, AttributeError, TypeError) as exc:
        raise CliError(f"trust root holds an invalid admin key: {exc}") from None


@dataclass
class Verified:
    directory: Directory
    entries: list[DirectoryEntry]
    checkpoint: Checkpoint | None


@dataclass
class Workspace:
    root: Path

    def path(self, name: str) -> Path:
        return self.root / name

    def trust_root(self) -> dict[str, VerifyKey]:
        return parse_trust_root(read_json(self.path(TRUST_ROOT), "trust root"))

    def verify(self) -> Verified:
        """Verify the log from the trust root and check the stored checkpoint against it."""
        directory = Directory(self.trust_root())
        entries = read_log(self.path(LOG))
        directory.extend(entries)
        checkpoint = None
        if self.path(CHECKPOINT).exists():
            try:
                checkpoint = Checkpoint.from_json(read_json(self.path(CHECKPOINT), "checkpoint"))
            except DirectoryError as exc:
                raise CliError(f"checkpoint: {exc}") from None
            # A log shorter than, or different from, what we signed before is a rollback
            # or a fork; DirectoryForked / DirectoryBehind propagate as refusals.
            directory.verify_checkpoint(checkpoint)
        return Verified(directory, entries, checkpoint)

    def save(
        self, verified: Verified, signer: KeyId, key: SigningKey, now: int
    ) -> Checkpoint | None:
        """Write the log, then a fresh checkpoint over it (log first: see verify).

        An admin who just removed itself is no admin of the new state and cannot sign
        its checkpoint; the previous checkpoint (still consistent) is kept.
        """
        write_log(self.path(LOG), verified.entries)
        if verified.directory.admins.get(str(signer)) != key.verify_key:
            return None
        checkpoint = verified.directory.checkpoint(signer, key, now)
        write_json(self.path(CHECKPOINT), checkpoint.to_json())
        return checkpoint

    # --- the admin keystore (the one place the CLI touches keys.crypto.keystore) ---------------
    def create_admin_keystore(
        self, kid: KeyId, key: SigningKey, pinned: dict[str, VerifyKey], passphrase: str
    ) -> None:
        path = self.path(KEYSTORE)
        if path.exists():
            raise CliError(f"refusing to overwrite an existing keystore: {path}")
        store = Keystore(owner=str(kid), admin_key=key, pinned_admins=dict(pinned))
        save_keystore(path, store, passphrase, cost=kdf_cost())

    def load_admin(self, passphrase: str) -> tuple[KeyId, SigningKey, dict[str, VerifyKey]]:
        store = load_keystore(self.path(KEYSTORE), passphrase)
        if store.admin_key is None:
            raise KeystoreError("this keystore holds no admin key")
        try:
            kid = KeyId.parse(store.owner)
        except KeysError:
            raise KeystoreError("this keystore is not an admin keystore") from None
        return kid, store.admin_key, dict(store.pinned_admins)


def kdf_cost() -> KdfCost:
    """The argon2id cost for new keystores; ``STAFETT_KDF_COST=test`` only for test suites."""
    name = os.environ.get("STAFETT_KDF_COST", "")
    if not name:
        return DEFAULT_COST
    try:
        return KdfCost[name.upper()]
    except KeyError:
        raise CliError("STAFETT_KDF_COST must be test, interactive or moderate") from None

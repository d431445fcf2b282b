"""A drop in the outbox: its sidecar, when it is complete, and the message id it gets.

The completeness rule (what a case system must follow, ``docs/integration.md``):

1. documents first, the sidecar ``<drop>.stafett.json`` last — ideally written under a
   dot-name (ignored here) and renamed;
2. the sidecar names every document with its exact ``size`` and ``sha256``.

A drop is *ready* only when every named document exists with exactly that size and
hash. A document still shorter than declared is being copied: the drop waits. A
sidecar that does not parse yet waits ``grace_s`` (it may be half-written by a case
system that ignored rule 1), then fails. A drop that stays incomplete for ``stale_s``
fails, so a forgotten half-drop is reported instead of waiting for ever.

Threat: a half-copied document sealed and sent as if complete (the recipient would
file a truncated record); the hash in the sidecar is what proves it complete.

The message id is derived from the sender device and the canonical sidecar (which
pins every document by hash): after a crash the same drop gets the same id, and the
gateway answers a resent envelope with its first answer instead of a second message.
Pure functions over a folder listing and ``now``; no network.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

import schemas
from clients.cli import bundle as cli_bundle
from keys.crypto.canonical import canonical_json
from keys.errors import KeysError

SUFFIX = ".stafett.json"
MAX_SIDECAR = 64 << 10
# A fixed namespace: the ids of one device's drops are stable across versions.
_NAMESPACE = uuid.UUID("6f1c3a52-8d0e-5b7a-9c41-2e5f7d9a0b13")
_READ = 1 << 20


class DropFailed(Exception):
    """The drop can never be sent as it is: it goes to ``failed/`` with ``code``."""

    def __init__(self, code: str, detail: str | None = None, documents: list[str] = ()) -> None:  # type: ignore[assignment]
        super().__init__(code)
        self.code = code
        self.detail = detail
        # Plain file names the refused sidecar names: they go to failed/ with it.
        self.documents = list(documents)


class DropWaits(Exception):
    """The drop is not complete yet (still being copied); look again later."""


@dataclass(frozen=True)
class Drop:
    sidecar_path: Path
    fields: dict[str, Any]
    digest: str  # sha256 of the canonical sidecar: what the message id is derived from

    @property
    def stem(self) -> str:
        return self.sidecar_path.name[: -len(SUFFIX)]

    @property
    def documents(self) -> list[dict[str, Any]]:
        return list(self.fields["documents"])

    def document_paths(self) -> list[Path]:
        return [self.sidecar_path.parent / d["name"] for d in self.documents]


@cache
def _validator() -> jsonschema.Draft202012Validator:
    path = Path(schemas.__file__).parent / "bridge-sidecar.json"
    return jsonschema.Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))


def sidecars(outbox: Path) -> list[Path]:
    """The sidecars waiting in ``outbox``, oldest first (dot-names are in-flight copies)."""
    found = [
        p
        for p in outbox.iterdir()
        if p.name.endswith(SUFFIX) and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def load(path: Path, *, now: float, grace_s: float, max_bytes: int) -> Drop:
    """Read and validate one sidecar; raises ``DropWaits`` or ``DropFailed``."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_SIDECAR + 1)
    if len(raw) > MAX_SIDECAR:
        raise DropFailed("sidecar_too_large")
    try:
        fields = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        if now - path.stat().st_mtime < grace_s:
            raise DropWaits() from None  # perhaps still being written
        raise DropFailed("sidecar_not_json") from None
    named = _named(fields)
    error = jsonschema.exceptions.best_match(_validator().iter_errors(fields))
    if error is not None:
        raise DropFailed("sidecar_invalid", _describe(error), named)
    for doc in fields["documents"]:
        if doc["size"] > max_bytes:
            raise DropFailed("document_too_large", f"{doc['size']} > {max_bytes} bytes", named)
    if len(set(named)) != len(fields["documents"]):
        # A repeated name, or one the bundle format refuses (e.g. unprintable characters
        # the schema's pattern lets through): refused now, not at every sealing attempt.
        raise DropFailed("sidecar_invalid", "a document name is repeated or unusable", named)
    try:
        digest = hashlib.sha256(canonical_json(fields)).hexdigest()
    except KeysError as exc:  # e.g. a string that is not in canonical (NFC) form
        raise DropFailed("sidecar_invalid", exc.code) from None
    return Drop(path, fields, digest)


def _named(fields: Any) -> list[str]:
    """The plain file names a (possibly invalid) sidecar names, for moving to failed/."""
    docs = fields.get("documents") if isinstance(fields, dict) else None
    names = [d.get("name") for d in docs if isinstance(d, dict)] if isinstance(docs, list) else []
    return sorted(
        {
            n
            for n in names
            if isinstance(n, str) and cli_bundle.safe_name(n) and not n.endswith(SUFFIX)
        }
    )


def _describe(error: jsonschema.ValidationError) -> str:
    """Where and which rule, never the offending value (it may be a personnummer)."""
    where = error.json_path
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(str(k)[:40] for k in error.instance if k not in allowed)
        return f"{where}: unknown field(s) {', '.join(unknown)}"
    if error.validator == "required":
        return f"{where}: a required field is missing ({str(error.message).split(' ')[0]})"
    return f"{where}: fails '{error.validator}'"


def check_complete(drop: Drop, *, now: float, stale_s: float) -> None:
    """Raise ``DropWaits`` while a document is still arriving, ``DropFailed`` when it
    never will match; return when every document is exactly what the sidecar names."""
    stale = now - drop.sidecar_path.stat().st_mtime >= stale_s
    for doc, path in zip(drop.documents, drop.document_paths(), strict=True):
        try:
            stat = path.stat()
        except FileNotFoundError:
            if stale:
                raise DropFailed("document_missing", doc["name"][:80]) from None
            raise DropWaits() from None
        if stat.st_size < doc["size"]:
            if stale and now - stat.st_mtime >= stale_s:
                raise DropFailed("document_mismatch", f"{doc['name'][:80]}: too short")
            raise DropWaits()
        if stat.st_size > doc["size"]:
            raise DropFailed("document_mismatch", f"{doc['name'][:80]}: too long")
        if file_sha256(path) != doc["sha256"]:
            # Same size, other bytes: a copy that preallocated the file may still be
            # filling it in; only a document left unchanged for stale_s is refused.
            if now - stat.st_mtime < stale_s:
                raise DropWaits()
            raise DropFailed("document_mismatch", f"{doc['name'][:80]}: sha256 differs")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ):
            digest.update(chunk)
    return digest.hexdigest()


def message_id(device: str, drop: Drop) -> str:
    """The drop's message id: the same for the same device and sidecar, always."""
    return str(uuid.uuid5(_NAMESPACE, f"{device}\n{drop.digest}"))

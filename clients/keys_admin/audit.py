"""``stafett-keys audit verify``: check an exported audit trail offline.

    stafett-keys audit verify --file EXPORT.json --gateway-key B64 [--gateway-key B64 ...]
                              [--known-checkpoints F]

``--gateway-key`` is repeatable: after a gateway key rotation the admins pin the new
key beside the old one, and a checkpoint signed by any pinned key verifies. Trust comes
from the pins alone (checked out of band: `stafett-gateway identity show` on the
gateway host, the fingerprint read aloud in the key ceremony); the rotation's audit
entry ``gateway_key_rotated``, covered by a checkpoint the *old* key signed, is the
record of when the new key took over, not a reason to trust it.

The export (``stafett admin audit-export``) holds the entries and the checkpoint the
gateway signed for them. Verification is :func:`keys.protocol.auditlog.verify_audit_chain`
against the gateway key pinned out of band; this module adds no network (``keys/``
never talks HTTP), a one-line diagnosis that names the kind of tampering, and the
memory of checkpoints verified before.

Why remembered checkpoints matter. The gateway signs its *current* head whenever it is
asked. An operator who rewrites the history (edits an entry and recomputes every later
hash) and then asks for a checkpoint gets a valid signature over the forged head: an
export checked against its own checkpoint alone passes. Only a checkpoint signed
*before* the rewrite, and kept where the operator cannot reach it, catches it. So
``--known-checkpoints F`` is read first (every checkpoint in it must still match the
chain) and, after a successful verification, the export's checkpoint is appended to it.
Checkpoints are signed, so the file cannot be forged; it can only be deleted or cut
short (threat: an operator with write access to the auditor's machine), so keep it
with the auditor, not on the gateway host.

Kinds named in the diagnosis (first anomaly in chain order):
``edited`` (an entry no longer matches its hash, or no longer links to its successor),
``dropped`` (a gap in the seqs, or entries missing after a signed checkpoint's size),
``inserted`` (two entries claim one seq, or entries beyond the newest signed
checkpoint), ``reordered`` (an entry appears before one it should follow),
``rewritten`` (the chain is whole but disagrees with a signed checkpoint),
``forged`` (a checkpoint not signed by this gateway key), ``malformed``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.keys_admin.store import CliError, Workspace, read_file
from keys.crypto.files import write_public
from keys.crypto.keypairs import VerifyKey
from keys.errors import (
    AuditChainBroken,
    AuditCheckpointMismatch,
    AuditCheckpointSignatureInvalid,
    AuditEntryAltered,
    AuditEntryInvalid,
    AuditError,
    AuditTruncated,
    KeysError,
)
from keys.protocol.auditlog import (
    ZERO_HASH,
    AuditHead,
    GatewayKeys,
    parse_audit_entry,
    verify_audit_chain,
    verify_audit_checkpoint,
)

# The contract with ``clients.cli.admin.cmd_audit_export``.
EXPORT_FORMAT = "stafett-audit-export"
KNOWN_FORMAT = "stafett-audit-checkpoints"
_MAX_FILE = 256 << 20  # ~ a million entries; a bigger export is a bug or an attack

VERIFY_HELP = "verify an exported audit trail offline (names any tampering)"
VERIFY_DESCRIPTION = (
    "Verify an audit trail exported with `stafett admin audit-export` against the "
    "gateway's key, offline. Exit 0 when the chain is whole and matches every signed "
    "checkpoint; 1 with one line naming the tampering (edited, dropped, inserted, "
    "reordered, rewritten) otherwise. The gateway signs its current head on request, "
    "so a history rewritten before the export comes with a fresh, valid checkpoint: "
    "only checkpoints remembered from earlier audits (--known-checkpoints) catch that."
)
KNOWN_HELP = (
    "file of checkpoints verified in earlier audits: each must still match; after a "
    "successful verify the export's checkpoint is appended (created if missing). Only "
    "remembered checkpoints catch a rewrite under a freshly signed checkpoint; keep "
    "this file with the auditor, away from the gateway's operators"
)

Out = Callable[[str], None]


@dataclass(frozen=True)
class Export:
    entries: list[Any]
    checkpoints: list[Any]


def add_audit_arguments(p: argparse.ArgumentParser) -> None:
    p.description = VERIFY_DESCRIPTION
    p.add_argument("--file", required=True, type=Path, metavar="EXPORT.json", help="the export")
    p.add_argument(
        "--gateway-key",
        required=True,
        action="append",
        metavar="B64",
        help=(
            "the gateway's Ed25519 verify key (base64), pinned out of band; repeat it "
            "for every key version after a rotation (a checkpoint signed by any of "
            "them verifies)"
        ),
    )
    p.add_argument("--known-checkpoints", type=Path, metavar="F", help=KNOWN_HELP)
    p.add_argument("--json", action="store_true")


def cmd_audit_verify(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    del ws  # offline and keyless: no admin workspace is needed
    values = args.gateway_key if isinstance(args.gateway_key, list) else [args.gateway_key]
    try:
        key = [VerifyKey.from_b64(value) for value in values]
    except KeysError:
        raise CliError("--gateway-key is not an Ed25519 public key in base64") from None
    export = read_export(args.file)
    known_path: Path | None = args.known_checkpoints
    known = read_known(known_path) if known_path is not None else []
    head = verify_export(export, key, known)
    remembered = 0
    if known_path is not None:
        remembered = remember(known_path, known, export.checkpoints)
    if args.json:
        out(
            json.dumps(
                {
                    "ok": True,
                    "size": head.size,
                    "head": head.head,
                    "known_checkpoints": len(known),
                    "remembered": remembered,
                },
                sort_keys=True,
            )
        )
        return
    out(f"audit trail intact: {head.size} entries, head {head.head}")
    out(f"  signed by the gateway at size {head.size}; {len(known)} remembered checkpoint(s)")
    if known_path is not None:
        out(f"  {remembered} new checkpoint(s) remembered in {known_path}")


# --- reading ------------------------------------------------------------------------------
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Threat: a file whose duplicate keys show a reader one value while the parser
    # verifies another.
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise CliError("the file holds a JSON object with a duplicate key")
    return dict(pairs)


def _read(path: Path, what: str) -> Any:
    raw = read_file(path, what, max_size=_MAX_FILE)
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        raise CliError(f"{what} is not JSON: {path}") from None


def read_export(path: Path) -> Export:
    obj = _read(path, "audit export")
    if (
        not isinstance(obj, dict)
        or obj.get("format", EXPORT_FORMAT) != EXPORT_FORMAT
        or not isinstance(obj.get("entries"), list)
        or not isinstance(obj.get("checkpoints"), list)
    ):
        raise CliError("an audit export is {format, v, entries: [...], checkpoints: [...]}")
    if not obj["checkpoints"]:
        raise CliError("the audit export holds no signed checkpoint: nothing vouches for it")
    return Export(obj["entries"], obj["checkpoints"])


def read_known(path: Path) -> list[Any]:
    if not path.exists():
        return []  # the first audit: nothing remembered yet
    obj = _read(path, "known checkpoints")
    if (
        not isinstance(obj, dict)
        or obj.get("format") != KNOWN_FORMAT
        or not isinstance(obj.get("checkpoints"), list)
    ):
        raise CliError(f"{path} is not a known-checkpoints file ({KNOWN_FORMAT})")
    return list(obj["checkpoints"])


def remember(path: Path, known: Sequence[Any], verified: Sequence[Any]) -> int:
    """Append the verified checkpoints not yet in ``path``; returns how many were new."""
    seen = {(c["size"], c["head"]) for c in known}
    new = [c for c in verified if (c["size"], c["head"]) not in seen]
    if new or not path.exists():
        merged = sorted([*known, *new], key=lambda c: (c["size"], c["created"]))
        doc = {"format": KNOWN_FORMAT, "v": 1, "checkpoints": merged}
        write_public(path, json.dumps(doc, sort_keys=True, indent=1).encode() + b"\n")
    return len(new)


# --- verifying and naming what is wrong -------------------------------------------------
def verify_export(export: Export, key: GatewayKeys, known: Sequence[Any]) -> AuditHead:
    """The verified head; a :class:`CliError` naming the tampering otherwise."""
    for source, checkpoints in (("a remembered", known), ("an exported", export.checkpoints)):
        for ckpt in checkpoints:
            try:
                verify_audit_checkpoint(ckpt, key)
            except AuditCheckpointSignatureInvalid as exc:
                detail = f"{source} checkpoint is not signed by a pinned gateway key"
                raise _tampered("forged", detail, exc) from None
            except AuditEntryInvalid as exc:
                raise _tampered("malformed", f"{source} checkpoint: {exc}", exc) from None
    try:
        head = verify_audit_chain(
            export.entries, checkpoints=[*known, *export.checkpoints], gateway_key=key
        )
    except AuditError as exc:
        raise _diagnose(exc, export, known) from None
    newest = max(c["size"] for c in [*known, *export.checkpoints])
    if head.size > newest:
        # Nobody signed these: a forged tail appended after the checkpoint.
        raise _tampered(
            "inserted",
            f"{_span(newest, head.size - 1)} after the newest signed checkpoint "
            f"(size {newest}): nothing vouches for it",
            AuditChainBroken(),
        )
    return head


def _tampered(kind: str, detail: str, exc: KeysError) -> CliError:
    return CliError(f"audit trail tampered ({kind}): {detail} [{exc.code}]")


def _diagnose(exc: AuditError, export: Export, known: Sequence[Any]) -> CliError:
    structural = _structural(export.entries)
    if structural is not None:
        kind, detail = structural
        return _tampered(kind, detail, exc)
    if isinstance(exc, AuditTruncated):
        length = len(export.entries)
        covered = max(c["size"] for c in [*known, *export.checkpoints])
        why = (
            "the last entries were cut off"
            if covered in {c["size"] for c in export.checkpoints}
            else "entries were cut off, or the export is older than a remembered checkpoint"
        )
        return _tampered(
            "dropped",
            f"the chain ends at {length} entries but a checkpoint covers {covered}: {why}",
            exc,
        )
    if isinstance(exc, AuditCheckpointMismatch):
        return _tampered("rewritten", _mismatch_detail(export, known), exc)
    return _tampered("malformed", str(exc), exc)


def _structural(entries: Sequence[Any]) -> tuple[str, str] | None:
    """The first structural anomaly in chain order, as ``(kind, detail)``; None if the
    entries form a whole chain (then only a checkpoint can disagree with it)."""
    seqs = [
        e.get("seq") if isinstance(e, Mapping) and type(e.get("seq")) is int else None
        for e in entries
    ]
    expected, prev = 0, ZERO_HASH
    for pos, raw in enumerate(entries):
        seq = seqs[pos]
        if seq is None:
            return "malformed", f"the entry at position {pos} has no integer seq"
        # Before the hash check: an inserted entry need not even hash correctly.
        if seq in seqs[:pos] or seq in seqs[pos + 1 :]:
            other = next(i for i, s in enumerate(seqs) if s == seq and i != pos)
            return "inserted", (
                f"two entries claim seq {seq} (positions {min(pos, other)} and "
                f"{max(pos, other)}): one of them was inserted"
            )
        try:
            entry = parse_audit_entry(raw)
        except AuditEntryAltered:
            return "edited", f"entry {seq} was changed: its content no longer matches its hash"
        except AuditEntryInvalid as exc:
            return "malformed", f"entry {seq}: {exc}"
        if seq != expected:
            if seq > expected and expected in seqs[pos + 1 :]:
                return "reordered", f"entry {seq} appears before entry {expected}"
            if seq > expected:
                missing = _span(expected, seq - 1)
                return "dropped", f"{missing} missing: the chain jumps to entry {seq}"
            return "reordered", f"entry {seq} appears after entry {expected - 1}"
        if entry.prev_hash != prev:
            # The seqs fit but the link does not: the predecessor was edited and given a
            # fresh hash, or this entry was swapped for a forged one.
            return "edited", (
                f"entry {seq} no longer follows entry {seq - 1}: one of them was changed "
                "and re-hashed"
            )
        expected, prev = seq + 1, entry.hash
    return None


def _span(first: int, last: int) -> str:
    return f"entry {first} is" if first == last else f"entries {first}–{last} are"


def _seq(entry: Any) -> int | None:
    value = entry.get("seq") if isinstance(entry, Mapping) else None
    return value if type(value) is int else None


def _mismatch_detail(export: Export, known: Sequence[Any]) -> str:
    heads = {0: ZERO_HASH}
    for raw in export.entries:  # structurally whole here: every entry parses and links
        entry = parse_audit_entry(raw)
        heads[entry.seq + 1] = entry.hash
    exported = {(c["size"], c["head"]) for c in export.checkpoints}
    by_size: dict[int, set[str]] = {}
    for ckpt in [*known, *export.checkpoints]:
        by_size.setdefault(ckpt["size"], set()).add(ckpt["head"])
    for size in sorted(by_size):
        if len(by_size[size]) > 1:
            return (
                f"two signed checkpoints disagree at size {size}: the gateway signed two histories"
            )
    for ckpt in sorted([*known, *export.checkpoints], key=lambda c: c["size"]):
        if heads.get(ckpt["size"]) != ckpt["head"]:
            where = "in the export" if (ckpt["size"], ckpt["head"]) in exported else "remembered"
            return (
                f"the chain does not match the checkpoint signed at size {ckpt['size']} "
                f"({where}): history up to it was rewritten and re-hashed"
            )
    return "the chain does not match a signed checkpoint"

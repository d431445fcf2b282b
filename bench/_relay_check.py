"""The relay bench's correctness check, after the measured cycles (issue 13, "Done when").

A fast gateway that loses messages, leaves content behind or breaks its audit chain has
not met the goal, whatever its ratios. So after the run, with the gateway still up and
nothing more sent, this checks from outside the gateway's request path:

- every message the bench sent is in the gateway's database and ``handed_over``
  (a read-only SQL connection: ``mode=ro`` on SQLite, a ``READ ONLY`` transaction on
  PostgreSQL), and there are exactly as many as cycles done plus warm-ups;
- no content is left: no file under any instance's blob directory (directory store;
  also the temp files of uploads), and on PostgreSQL no row in ``blob_chunks`` or
  ``blob_uploads`` (``gateway.db.models.BlobChunkRow`` / ``BlobUploadRow``);
- the audit chain verifies: the entries and a signed checkpoint fetched as a security
  admin (``GET /v1/audit/entries`` and ``/v1/audit/checkpoint``, what ``stafett admin
  audit-export`` writes), verified by ``stafett-keys audit verify``'s own
  ``verify_export`` against the gateway key read with ``stafett-gateway identity show``
  (the out-of-band pin).

Not a benchmark itself (the leading underscore keeps it out of ``bench.run``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from bench import _gateway as g
from bench import _postgres
from clients.keys_admin.audit import Export, verify_export
from clients.keys_admin.store import CliError
from keys.crypto.keypairs import VerifyKey
from keys.errors import KeysError

HANDED_OVER = "handed_over"  # keys.domain.lifecycle.MessageState.HANDED_OVER
_AUDIT_PAGE = 1000  # gateway.views.audit.MAX_LIMIT


def _sqlite_counts(db_path: Path) -> tuple[int, int]:
    # Read-only by URI: the check must not be able to change what it checks.
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        total = db.execute("SELECT count(*) FROM messages").fetchone()[0]
        handed = db.execute(
            "SELECT count(*) FROM messages WHERE state = ?", (HANDED_OVER,)
        ).fetchone()[0]
    return int(total), int(handed)


async def _postgres_counts(dsn: str) -> tuple[int, int, int]:
    """(messages, handed over, blob rows left: chunks + undecided uploads)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(readonly=True):
            total = await conn.fetchval("SELECT count(*) FROM messages")
            handed = await conn.fetchval(
                "SELECT count(*) FROM messages WHERE state = $1", HANDED_OVER
            )
            chunks = await conn.fetchval("SELECT count(*) FROM blob_chunks")
            uploads = await conn.fetchval("SELECT count(*) FROM blob_uploads")
    finally:
        await conn.close()
    return int(total), int(handed), int(chunks) + int(uploads)


def _files_under(directory: Path) -> int:
    return sum(1 for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else 0


def _pinned_keys(gw: g.GatewayProcess) -> list[VerifyKey]:
    """``stafett-gateway identity show``: one line ``kid[ (current)] B64 fingerprint FP``
    per key version (blocking)."""
    keys = [
        VerifyKey.from_b64(line.split()[-3])
        for line in gw.command("identity", "show").splitlines()
        if " fingerprint " in line
    ]
    if not keys:
        raise RuntimeError("stafett-gateway identity show printed no key")
    return keys


async def _audit_export(dep: g.Deployment) -> Export:
    """What ``stafett admin audit-export`` writes: the signed checkpoint (asked first, so
    it covers the entries the gateway has now) and the chain cut at its size."""
    admin = dep.transport()
    checkpoint = await admin.request("GET", "/v1/audit/checkpoint")
    entries: list[Any] = []
    after = -1
    while True:
        page = await admin.request(
            "GET", "/v1/audit/entries", query={"after": after, "limit": _AUDIT_PAGE}
        )
        if not isinstance(page, dict) or not isinstance(page.get("entries"), list):
            raise RuntimeError("unexpected answer to GET /v1/audit/entries")
        entries.extend(page["entries"])
        if len(page["entries"]) < _AUDIT_PAGE:
            break
        after = int(page["entries"][-1]["seq"])
    if not isinstance(checkpoint, dict):
        raise RuntimeError("unexpected answer to GET /v1/audit/checkpoint")
    return Export(entries[: int(checkpoint["size"])], [checkpoint])


async def _audit_verified(dep: g.Deployment) -> bool:
    keys = await asyncio.to_thread(_pinned_keys, dep.gw)
    export = await _audit_export(dep)
    try:
        head = verify_export(export, keys, [])
    except (CliError, KeysError) as exc:
        print(f"relay bench: the audit chain does not verify: {exc}", file=sys.stderr)
        return False
    return head.size == len(export.entries) > 0


async def check(
    dep: g.Deployment, data_dirs: Sequence[Path], database_url: str | None, expected: int
) -> dict[str, Any]:
    """The ``correctness`` figures, with ``ok``; ``expected`` = cycles done + warm-ups."""
    blobs_left = sum(_files_under(d / "blobs") for d in data_dirs)
    if database_url is None:
        total, handed = await asyncio.to_thread(_sqlite_counts, data_dirs[0] / "gateway.sqlite3")
    else:
        total, handed, rows = await _postgres_counts(_postgres.asyncpg_dsn(database_url))
        blobs_left += rows
    audit_verified = await _audit_verified(dep)
    ok = total == handed == expected and blobs_left == 0 and audit_verified
    return {
        "expected": expected,
        "messages": total,
        "handed_over": handed,
        "blobs_left": blobs_left,
        "audit_verified": audit_verified,
        "ok": ok,
    }

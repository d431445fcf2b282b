"""The audit trail service: append hash-chained entries, sign checkpoints.

The chain format and hashing are ``keys.protocol.auditlog`` (one definition, shared with
``stafett-keys audit verify``); this module only stores entries and serialises appends
across instances. Entries hold ids, pseudonyms, codes and hashes — never content
(``keys.protocol.auditlog.check_audit_data`` refuses content-shaped fields).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import audit_store, handover_store
from gateway.db.models import AuditCheckpointRow, AuditEntryRow
from gateway.db.units import in_session
from keys.crypto.canonical import canonical_json
from keys.crypto.keypairs import KeyId, SigningKey
from keys.protocol.auditlog import AuditHead, make_audit_entry, sign_audit_checkpoint


async def _head(session: AsyncSession) -> AuditHead | None:
    size, head = await audit_store.head(session)
    return None if head is None else AuditHead(size, head)


def append(conn: Connection, event: str, *, now: int, **fields: Any) -> int:
    """Append one entry inside the caller's transaction (a unit of work's connection);
    returns its seq.

    Call it in the same transaction as the decision it records: if the decision rolls
    back, so does the entry, and an entry never describes something that did not happen.
    """
    handover_store.lock_chain(conn)
    size, head = handover_store.audit_head(conn)
    prev = None if head is None else AuditHead(size, head)
    entry = make_audit_entry(prev, size, now, event, fields)
    handover_store.insert_audit(
        conn,
        {
            "seq": entry.seq,
            "prev_hash": entry.prev_hash,
            "created": entry.created,
            "event": entry.event,
            "data_json": canonical_json(entry.data).decode("utf-8"),
            "hash": entry.hash,
        },
    )
    return entry.seq


async def record(session: AsyncSession, event: str, *, now: int, **fields: Any) -> int:
    """:func:`append` in an ORM session's transaction."""

    seq, _ = await in_session(session, lambda tx: append(tx.conn, event, now=now, **fields))
    return seq


def row_to_json(row: AuditEntryRow) -> dict[str, Any]:
    """The wire form ``keys.protocol.auditlog.parse_audit_entry`` checks."""
    return {
        "seq": row.seq,
        "prev_hash": row.prev_hash,
        "created": row.created,
        "event": row.event,
        "data": json.loads(row.data_json),
        "hash": row.hash,
    }


def checkpoint_json(row: AuditCheckpointRow) -> dict[str, Any]:
    """The wire form ``keys.protocol.auditlog.verify_audit_checkpoint`` checks."""
    return {
        "size": row.size,
        "head": row.head,
        "created": row.created,
        "signer": row.signer,
        "sig": row.sig,
    }


async def sign_checkpoint(
    session: AsyncSession, signer: KeyId, key: SigningKey, *, now: int
) -> AuditCheckpointRow | None:
    """Sign a checkpoint of the current head if it moved since the last one.

    Idempotent and safe on several instances at once: the chain lock orders them and the
    second sees that the head is already covered. Returns the latest checkpoint.
    """
    await audit_store.lock_chain(session)
    head = await _head(session)
    latest = await audit_store.latest_checkpoint(session)
    if head is None or (latest is not None and latest.size >= head.size):
        return latest
    # The kid is bound into the signature: with several key versions (a rotation) or
    # instances, a verifier and an auditor see which key vouched for which head.
    signed = sign_audit_checkpoint(head, now, key, str(signer))
    row = AuditCheckpointRow(
        size=signed["size"],
        head=signed["head"],
        created=signed["created"],
        signer=str(signer),
        sig=signed["sig"],
    )
    await audit_store.insert_checkpoint(session, row)
    return row

"""SQL of the handover path's units of work (``gateway.db.units``): send, fetch, receipt.

Synchronous SQLAlchemy Core over the unit's connection, statements built once at import
(their compiled form is cached by SQLAlchemy, the prepared statement by the driver), rows
back as plain tuples. The async store modules keep the same tables' other statements
(jobs, admin paths, listings); the nonce, audit and event appends there call the
functions here, so each of those statements exists once.

Locks (PostgreSQL; SQLite's writer holds the one write lock for the whole unit): the
message row ``FOR UPDATE`` serialises receipt / recall / withdrawal / expiry of one
message across instances; the consent row ``FOR SHARE`` orders a send against a
withdrawal; the directory's shared advisory lock orders a send against an append.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.db.audit_store import AUDIT_LOCK_ID as _AUDIT_LOCK_ID
from gateway.db.directory_store import DIRECTORY_LOCK_ID as _DIRECTORY_LOCK_ID
from gateway.db.models import (
    BlobChunkRow,
    BlobUploadRow,
    ConsentRow,
    DirectoryEntryRow,
    EventRow,
    MessageRecipient,
    MessageRow,
    NonceRow,
    ReceiptRow,
)


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


_MESSAGES = _table(MessageRow)
_RECIPIENTS = _table(MessageRecipient)

_GET_MESSAGE = select(_MESSAGES).where(MessageRow.id == bindparam("mid"))
_GET_MESSAGE_FOR_UPDATE = _GET_MESSAGE.with_for_update()
_RECIPIENT_KIDS = (
    select(MessageRecipient.kid)
    .where(MessageRecipient.message_id == bindparam("mid"))
    .order_by(MessageRecipient.kid)
)
_INSERT_MESSAGE = insert(_MESSAGES)
_INSERT_RECIPIENT = insert(_RECIPIENTS)
_DELETE_RECIPIENTS = delete(_RECIPIENTS).where(MessageRecipient.message_id == bindparam("mid"))
_CLEAR_BLOB = update(_MESSAGES).where(MessageRow.id == bindparam("mid")).values(blob_key=None)
_INSERT_RECEIPT = insert(_table(ReceiptRow))
_GET_RECEIPT = select(ReceiptRow.receipt_json).where(ReceiptRow.message_id == bindparam("mid"))
_GET_CONSENT = select(_table(ConsentRow)).where(ConsentRow.id == bindparam("mid"))
_GET_CONSENT_SHARE = _GET_CONSENT.with_for_update(read=True)
_DIRECTORY_SIZE = select(func.max(DirectoryEntryRow.seq))
_INSERT_EVENT = insert(_table(EventRow)).returning(EventRow.seq)
_NONCE_INSERT = {
    name: dialect.insert(_table(NonceRow)).on_conflict_do_nothing()
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_CLAIM_UPLOAD = (
    delete(_table(BlobUploadRow))
    .where(BlobUploadRow.blob_key == bindparam("key"), BlobUploadRow.owner == bindparam("owner"))
    .returning(BlobUploadRow.blob_key)
)
_INSERT_CHUNK = insert(_table(BlobChunkRow))
_ONLY_CHUNK = text(
    "SELECT data FROM blob_chunks WHERE blob_key = :key AND seq = 0 AND NOT EXISTS "
    "(SELECT 1 FROM blob_chunks AS later WHERE later.blob_key = :key AND later.seq = 1)"
)
_DELETE_CHUNKS = delete(_table(BlobChunkRow)).where(BlobChunkRow.blob_key == bindparam("key"))


def _postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


# -- nonces --------------------------------------------------------------------------------
def claim_nonce(conn: Connection, keyid: str, nonce: str, created: int) -> bool:
    """Remember ``(keyid, nonce)``; False if it was already there (a replay).

    ON CONFLICT DO NOTHING rather than catching the IntegrityError: on PostgreSQL a
    failed INSERT aborts the whole transaction, and the unique index decides atomically
    even when two instances see the same replayed request at the same moment.
    """
    stmt = _NONCE_INSERT["postgresql" if _postgres(conn) else "sqlite"]
    result = conn.execute(stmt, {"keyid": keyid, "nonce": nonce, "created": created})
    return bool(result.rowcount == 1)


# -- directory -----------------------------------------------------------------------------
def directory_size(conn: Connection, *, hold: bool = False) -> int:
    """Stored entries (max(seq) + 1). ``hold``: on PostgreSQL take the shared advisory
    lock against appends first, so the size stays true until this transaction ends."""
    if hold and _postgres(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": _DIRECTORY_LOCK_ID})
    top = conn.execute(_DIRECTORY_SIZE).scalar()
    return 0 if top is None else int(top) + 1


# -- messages ------------------------------------------------------------------------------
def message(conn: Connection, message_id: str, *, for_update: bool = False) -> MessageRow | None:
    """The row as a detached ``MessageRow`` (attribute access like the ORM's), or None."""
    stmt = _GET_MESSAGE_FOR_UPDATE if for_update else _GET_MESSAGE
    row = conn.execute(stmt, {"mid": message_id}).first()
    return None if row is None else MessageRow(**row._mapping)


def recipients(conn: Connection, message_id: str) -> list[str]:
    return [str(k) for k in conn.execute(_RECIPIENT_KIDS, {"mid": message_id}).scalars()]


def insert_message(conn: Connection, row: MessageRow, recipient_kids: Iterable[str]) -> None:
    values = {c.key: getattr(row, c.key) for c in _MESSAGES.columns}
    conn.execute(_INSERT_MESSAGE, values)
    conn.execute(
        _INSERT_RECIPIENT,
        [{"message_id": row.id, "kid": k, "exposed_at": None} for k in sorted(set(recipient_kids))],
    )


def move(
    conn: Connection, message_id: str, *, from_states: Collection[str], values: dict[str, Any]
) -> bool:
    """Conditional update: only from one of ``from_states``. False when another
    transaction moved the message first (so it is never processed twice)."""
    result = conn.execute(
        update(_MESSAGES)
        .where(MessageRow.id == message_id, MessageRow.state.in_(list(from_states)))
        .values(**values)
    )
    return bool(result.rowcount)


def drop_recipients(conn: Connection, message_id: str) -> None:
    conn.execute(_DELETE_RECIPIENTS, {"mid": message_id})


def clear_blob_key(conn: Connection, message_id: str) -> None:
    conn.execute(_CLEAR_BLOB, {"mid": message_id})


def insert_receipt(
    conn: Connection, message_id: str, receipt_json: str, directory_size_: int | None
) -> None:
    conn.execute(
        _INSERT_RECEIPT,
        {"message_id": message_id, "receipt_json": receipt_json, "directory_size": directory_size_},
    )


def receipt(conn: Connection, message_id: str) -> str | None:
    value = conn.execute(_GET_RECEIPT, {"mid": message_id}).scalar()
    return None if value is None else str(value)


# -- consents ------------------------------------------------------------------------------
def consent(conn: Connection, consent_id: str, *, share: bool = False) -> ConsentRow | None:
    stmt = _GET_CONSENT_SHARE if share else _GET_CONSENT
    row = conn.execute(stmt, {"mid": consent_id}).first()
    return None if row is None else ConsentRow(**row._mapping)


# -- audit chain and events ----------------------------------------------------------------
def lock_chain(conn: Connection) -> None:
    """Serialise appends to the audit chain (and event numbering) until this
    transaction ends. PostgreSQL: a transaction-scoped advisory lock. SQLite: the
    transaction already holds the single write lock (BEGIN IMMEDIATE)."""
    if _postgres(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK_ID})


_HEAD = text("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1")
_INSERT_AUDIT = text(
    "INSERT INTO audit_entries (seq, prev_hash, created, event, data_json, hash) "
    "VALUES (:seq, :prev_hash, :created, :event, :data_json, :hash)"
)


def audit_head(conn: Connection) -> tuple[int, str | None]:
    """(size, hash hex of the last entry or None when empty)."""
    row = conn.execute(_HEAD).first()
    return (0, None) if row is None else (int(row[0]) + 1, str(row[1]))


def insert_audit(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(_INSERT_AUDIT, values)


def insert_event(conn: Connection, values: dict[str, Any]) -> int:
    """Insert one event row; its seq."""
    return int(conn.execute(_INSERT_EVENT, values).scalar_one())


# -- the PostgreSQL blob store's part of a unit --------------------------------------------
def claim_upload(conn: Connection, key: str, owner: str) -> bool:
    """Remove the upload marker: from this commit on the message row owns the chunks.
    False: a sweep took the upload for dead, and its chunks with it."""
    return conn.execute(_CLAIM_UPLOAD, {"key": key, "owner": owner}).first() is not None


def delete_chunks(conn: Connection, key: str) -> int:
    """Delete the chunks of ``key``; how many there were."""
    return int(conn.execute(_DELETE_CHUNKS, {"key": key}).rowcount)


def insert_chunk(conn: Connection, key: str, seq: int, data: bytes) -> None:
    conn.execute(_INSERT_CHUNK, {"blob_key": key, "seq": seq, "data": data})


def single_chunk(conn: Connection, key: str) -> bytes | None:
    """The data of ``key`` if it is stored as exactly one chunk (an inline envelope, or a
    small one in the PostgreSQL store); None otherwise (a file, or several chunks)."""
    data = conn.execute(_ONLY_CHUNK, {"key": key}).scalar()
    return None if data is None else bytes(data)

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

from sqlalchemy import Table, bindparam, delete, func, insert, null, select, text, update
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
from gateway.db.statements import Statement


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


_MESSAGES = _table(MessageRow)
_RECIPIENTS = _table(MessageRecipient)
_MESSAGE_COLUMNS = tuple(c.key for c in _MESSAGES.columns)
_CONSENT_COLUMNS = tuple(c.key for c in _table(ConsentRow).columns)

_GET_MESSAGE = Statement(select(_MESSAGES).where(MessageRow.id == bindparam("mid")))
_GET_MESSAGE_FOR_UPDATE = Statement(
    select(_MESSAGES).where(MessageRow.id == bindparam("mid")).with_for_update()
)
_RECIPIENT_KIDS = Statement(
    select(MessageRecipient.kid)
    .where(MessageRecipient.message_id == bindparam("mid"))
    .order_by(MessageRecipient.kid)
)
_INSERT_MESSAGE = Statement(insert(_MESSAGES), _MESSAGE_COLUMNS)
_INSERT_RECIPIENT = Statement(insert(_RECIPIENTS), ("message_id", "kid", "exposed_at"))
_DELETE_RECIPIENTS = Statement(
    delete(_RECIPIENTS).where(MessageRecipient.message_id == bindparam("mid"))
)
_CLEAR_BLOB = Statement(
    update(_MESSAGES).where(MessageRow.id == bindparam("mid")).values(blob_key=null())
)
_INSERT_RECEIPT = Statement(
    insert(_table(ReceiptRow)), ("message_id", "receipt_json", "directory_size")
)
_GET_RECEIPT = Statement(
    select(ReceiptRow.receipt_json).where(ReceiptRow.message_id == bindparam("mid"))
)
_GET_CONSENT = Statement(select(_table(ConsentRow)).where(ConsentRow.id == bindparam("mid")))
_GET_CONSENT_SHARE = Statement(
    select(_table(ConsentRow)).where(ConsentRow.id == bindparam("mid")).with_for_update(read=True)
)
_DIRECTORY_SIZE = Statement(select(func.max(DirectoryEntryRow.seq)))
_HOLD_DIRECTORY = Statement(text("SELECT pg_advisory_xact_lock_shared(:k)"))
_LOCK_CHAIN = Statement(text("SELECT pg_advisory_xact_lock(:k)"))
_EVENT_COLUMNS = ("unit", "device", "kind", "message_id", "created", "data_json")
_INSERT_EVENT = Statement(insert(_table(EventRow)).returning(EventRow.seq), _EVENT_COLUMNS)
# unit first: it uses the (unit, seq) index; device narrows within the unit. (Text, as
# a Core LIMIT renames its bound parameter.)
_EVENTS_OF_DEVICE = Statement(
    text(
        "SELECT seq, kind, message_id, created, data_json FROM events "
        "WHERE unit = :unit AND device = :device AND seq > :after ORDER BY seq LIMIT :limit"
    )
)
_NONCE_COLUMNS = ("keyid", "nonce", "created")
_NONCE_INSERT = {
    name: Statement(dialect.insert(_table(NonceRow)).on_conflict_do_nothing(), _NONCE_COLUMNS)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_AUDIT_HEAD = Statement(text("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1"))
_INSERT_AUDIT = Statement(
    text(
        "INSERT INTO audit_entries (seq, prev_hash, created, event, data_json, hash) "
        "VALUES (:seq, :prev_hash, :created, :event, :data_json, :hash)"
    )
)
_CLAIM_UPLOAD = Statement(
    delete(_table(BlobUploadRow))
    .where(BlobUploadRow.blob_key == bindparam("key"), BlobUploadRow.owner == bindparam("owner"))
    .returning(BlobUploadRow.blob_key)
)
_INSERT_CHUNK = Statement(insert(_table(BlobChunkRow)), ("blob_key", "seq", "data"))
_ONLY_CHUNK = Statement(
    text(
        "SELECT data FROM blob_chunks WHERE blob_key = :key AND seq = 0 AND NOT EXISTS "
        "(SELECT 1 FROM blob_chunks AS later WHERE later.blob_key = :key AND later.seq = 1)"
    )
)
_DELETE_CHUNKS = Statement(
    delete(_table(BlobChunkRow)).where(BlobChunkRow.blob_key == bindparam("key"))
)
# Conditional state moves, one statement per set of columns (the callers use a few).
_MOVES: dict[tuple[str, ...], Statement] = {}


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
    return stmt.run(conn, {"keyid": keyid, "nonce": nonce, "created": created}) == 1


# -- directory -----------------------------------------------------------------------------
def directory_size(conn: Connection, *, hold: bool = False) -> int:
    """Stored entries (max(seq) + 1). ``hold``: on PostgreSQL take the shared advisory
    lock against appends first, so the size stays true until this transaction ends."""
    if hold and _postgres(conn):
        _HOLD_DIRECTORY.first(conn, {"k": _DIRECTORY_LOCK_ID})
    top = _DIRECTORY_SIZE.scalar(conn, {})
    return 0 if top is None else int(top) + 1


# -- messages ------------------------------------------------------------------------------
def message(conn: Connection, message_id: str, *, for_update: bool = False) -> MessageRow | None:
    """The row as a detached ``MessageRow`` (attribute access like the ORM's), or None."""
    stmt = _GET_MESSAGE_FOR_UPDATE if for_update else _GET_MESSAGE
    row = stmt.first(conn, {"mid": message_id})
    return None if row is None else MessageRow(**dict(zip(_MESSAGE_COLUMNS, row, strict=True)))


def recipients(conn: Connection, message_id: str) -> list[str]:
    return [str(k) for (k,) in _RECIPIENT_KIDS.all(conn, {"mid": message_id})]


def insert_message(conn: Connection, row: MessageRow, recipient_kids: Iterable[str]) -> None:
    _INSERT_MESSAGE.run(conn, {key: getattr(row, key) for key in _MESSAGE_COLUMNS})
    _INSERT_RECIPIENT.run_many(
        conn,
        ({"message_id": row.id, "kid": k, "exposed_at": None} for k in sorted(set(recipient_kids))),
    )


def move(
    conn: Connection, message_id: str, *, from_states: Collection[str], values: dict[str, Any]
) -> bool:
    """Conditional update: only from one of ``from_states`` (one or two of them). False
    when another transaction moved the message first (so it is never processed twice)."""
    states = list(from_states)
    if not 1 <= len(states) <= 2:
        raise ValueError("a move starts from one or two states")
    keys = tuple(sorted(values))
    stmt = _MOVES.get(keys)
    if stmt is None:
        stmt = _MOVES[keys] = Statement(
            update(_MESSAGES)
            .where(
                MessageRow.id == bindparam("mid"),
                MessageRow.state.in_([bindparam("from_1"), bindparam("from_2")]),
            )
            .values({key: bindparam(f"v_{key}") for key in keys})
        )
    params = {f"v_{key}": values[key] for key in keys}
    params.update(mid=message_id, from_1=states[0], from_2=states[-1])
    return stmt.run(conn, params) > 0


def drop_recipients(conn: Connection, message_id: str) -> None:
    _DELETE_RECIPIENTS.run(conn, {"mid": message_id})


def clear_blob_key(conn: Connection, message_id: str) -> None:
    _CLEAR_BLOB.run(conn, {"mid": message_id})


def insert_receipt(
    conn: Connection, message_id: str, receipt_json: str, directory_size_: int | None
) -> None:
    _INSERT_RECEIPT.run(
        conn,
        {"message_id": message_id, "receipt_json": receipt_json, "directory_size": directory_size_},
    )


def receipt(conn: Connection, message_id: str) -> str | None:
    value = _GET_RECEIPT.scalar(conn, {"mid": message_id})
    return None if value is None else str(value)


# -- consents ------------------------------------------------------------------------------
def consent(conn: Connection, consent_id: str, *, share: bool = False) -> ConsentRow | None:
    stmt = _GET_CONSENT_SHARE if share else _GET_CONSENT
    row = stmt.first(conn, {"mid": consent_id})
    return None if row is None else ConsentRow(**dict(zip(_CONSENT_COLUMNS, row, strict=True)))


# -- audit chain and events ----------------------------------------------------------------
def lock_chain(conn: Connection) -> None:
    """Serialise appends to the audit chain (and event numbering) until this
    transaction ends. PostgreSQL: a transaction-scoped advisory lock. SQLite: the
    transaction already holds the single write lock (BEGIN IMMEDIATE)."""
    if _postgres(conn):
        _LOCK_CHAIN.first(conn, {"k": _AUDIT_LOCK_ID})


def audit_head(conn: Connection) -> tuple[int, str | None]:
    """(size, hash hex of the last entry or None when empty)."""
    row = _AUDIT_HEAD.first(conn, {})
    return (0, None) if row is None else (int(row[0]) + 1, str(row[1]))


def insert_audit(conn: Connection, values: dict[str, Any]) -> None:
    _INSERT_AUDIT.run(conn, values)


def insert_event(conn: Connection, values: dict[str, Any]) -> int:
    """Insert one event row; its seq."""
    return int(_INSERT_EVENT.scalar(conn, values))


def events_of_device(
    conn: Connection, *, unit: str, device: str, after: int, limit: int
) -> list[tuple[int, str, str | None, int, str]]:
    """(seq, kind, message_id, created, data_json) of ``device``'s events after ``after``."""
    rows = _EVENTS_OF_DEVICE.all(
        conn, {"unit": unit, "device": device, "after": after, "limit": limit}
    )
    return [(int(r[0]), str(r[1]), r[2], int(r[3]), str(r[4])) for r in rows]


# -- blobs kept in the database ------------------------------------------------------------
def claim_upload(conn: Connection, key: str, owner: str) -> bool:
    """Remove the PostgreSQL store's upload marker: from this commit on the message row
    owns the chunks. False: a sweep took the upload for dead, and its chunks with it."""
    return _CLAIM_UPLOAD.first(conn, {"key": key, "owner": owner}) is not None


def delete_chunks(conn: Connection, key: str) -> int:
    """Delete the chunks of ``key``; how many there were."""
    return _DELETE_CHUNKS.run(conn, {"key": key})


def insert_chunk(conn: Connection, key: str, seq: int, data: bytes) -> None:
    _INSERT_CHUNK.run(conn, {"blob_key": key, "seq": seq, "data": data})


def single_chunk(conn: Connection, key: str) -> bytes | None:
    """The data of ``key`` if it is stored as exactly one chunk (an inline envelope, or a
    small one in the PostgreSQL store); None otherwise (a file, or several chunks)."""
    data = _ONLY_CHUNK.scalar(conn, {"key": key})
    return None if data is None else bytes(data)

"""The one deletion path for message content, shared by every way a message ends.

Handover, rejection, recall, consent withdrawal and expiry all end in
:func:`destroy_content`: the blob file, the wrapped keys (inside the blob) and every
index that says who may read it (``message_recipients``) go in the caller's
transaction; the files are returned to be unlinked *after* the commit (a rolled-back
transaction must not have deleted accepted content; a file whose row is gone is an
orphan for ``gateway.recovery.sweep_orphan_blobs``).

Concurrency: each message row is locked (``SELECT … FOR UPDATE``) and moved with a
conditional ``UPDATE … WHERE state IN (pending)``, so two instances (a withdrawal and
the expiry job, say) never both end the same message.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.blobs import BlobStore
from gateway.blobstore import Blobs
from gateway.db import audit_trail as audit
from gateway.db import handover_store, message_store
from gateway.db.models import MessageRow
from gateway.db.units import Tx, in_session
from gateway.services.events import emit
from keys.crypto.keypairs import KeyId
from keys.domain.lifecycle import PENDING, MessageEvent, is_pending, transition

PENDING_STATES = tuple(str(s) for s in PENDING)
BlobDir = Blobs | Path


def _store(blobs: BlobDir) -> Blobs:
    return BlobStore(blobs) if isinstance(blobs, Path) else blobs


def devices_of(kids: Iterable[str]) -> list[str]:
    """Distinct devices (``unit/name``) of key ids, in order: events go to devices."""
    seen: dict[str, None] = {}
    for kid in kids:
        seen.setdefault(str(KeyId.parse(kid).device), None)
    return list(seen)


async def emit_all(
    session: AsyncSession,
    devices: Iterable[str],
    *,
    kind: str,
    message_id: str,
    data: dict[str, Any],
    now: int,
) -> None:
    for device in devices:
        await emit(session, device=device, kind=kind, message_id=message_id, data=data, now=now)


async def destroy_content(session: AsyncSession, message_id: str, *, blobs: BlobDir) -> list[Path]:
    """Delete a message's content in this transaction; return the files to unlink after
    commit. Idempotent: a message without content returns no files."""
    store = _store(blobs)

    def destroy(tx: Tx) -> list[Path]:
        row = handover_store.message(tx.conn, message_id)
        return [] if row is None else destroy_content_in(tx, row, blobs=store)

    files, tx = await in_session(session, destroy)
    if tx.wiped_content:
        store.notify_wiped()  # the WAL scrub after an ORM path's deletion
    return files


def destroy_content_in(tx: Tx, row: MessageRow, *, blobs: BlobDir) -> list[Path]:
    """:func:`destroy_content` inside a unit of work, for a row the unit holds locked.
    Directory store: files to unlink after the commit. Inline envelopes and the
    PostgreSQL store: deleted right here, in the transaction that ends the message."""
    handover_store.drop_recipients(tx.conn, row.id)
    if row.blob_key is None:
        return []
    handover_store.clear_blob_key(tx.conn, row.id)
    return _store(blobs).destroy_in(tx, row.blob_key)


async def end_pending(
    session: AsyncSession,
    message_id: str,
    event: MessageEvent,
    *,
    now: int,
    blobs: BlobDir,
    reason: str | None = None,
) -> list[Path]:
    """End a pending message by ``event`` (expire, withdraw or recall): state, content
    deletion, audit entry, and events to the sender (``outbox.<state>``) and the
    recipient devices (``inbox.removed``). Returns files to unlink after commit; a
    message that is no longer pending is left alone (returns ``[]``)."""
    _, files = await _end(session, message_id, event, now=now, blobs=blobs, reason=reason)
    return files


async def _end(
    session: AsyncSession,
    message_id: str,
    event: MessageEvent,
    *,
    now: int,
    blobs: BlobDir,
    reason: str | None,
) -> tuple[bool, list[Path]]:
    row = await message_store.get(session, message_id, for_update=True)
    if row is None or not is_pending(row.state):
        return False, []
    new_state = str(transition(row.state, event))  # pure rule; refuses terminal states
    recipient_kids = await message_store.recipients(session, message_id)
    moved = await message_store.set_state(
        session,
        message_id,
        from_states=PENDING_STATES,
        values={"state": new_state, "state_changed_at": now, "end_reason": reason},
    )
    if not moved:
        return False, []
    files = await destroy_content(session, message_id, blobs=blobs)
    await audit.record(
        session,
        f"message_{new_state}",
        now=now,
        **message_facts(row),
        reason=reason,
    )
    await emit_all(
        session,
        devices_of([row.sender_kid]),
        kind=f"outbox.{new_state}",
        message_id=message_id,
        data={"state": new_state, "reason": reason},
        now=now,
    )
    await emit_all(
        session,
        devices_of(recipient_kids),
        kind="inbox.removed",
        message_id=message_id,
        data={"state": new_state},
        now=now,
    )
    return True, files


def message_facts(row: MessageRow) -> dict[str, Any]:
    """What every audit entry about a message names: ids, codes, pseudonym, hash."""
    return {
        "message_id": row.id,
        "sender": row.sender_kid,
        "sender_unit": row.sender_unit,
        "recipient_unit": row.recipient_unit,
        "consent_id": row.consent_id,
        "consent_version": row.consent_version,
        "subject_ref": row.subject_ref,
        "category": row.category,
        "purpose": row.purpose,
        "header_hash": row.header_hash,
    }


async def withdraw_pending(
    session: AsyncSession, consent_id: str, *, now: int, reason: str, blobs: BlobDir
) -> tuple[list[Path], int]:
    """Withdraw every pending message under a consent; ``(files, how many)``.

    Waits for rows another transaction holds (no SKIP LOCKED): a message mid-handover
    must end up either handed over or withdrawn, never pending under a withdrawn consent.
    """
    files: list[Path] = []
    count = 0
    for message_id in await message_store.pending_under_consent(
        session, consent_id, PENDING_STATES
    ):
        ended, paths = await _end(
            session, message_id, MessageEvent.WITHDRAW, now=now, blobs=blobs, reason=reason
        )
        count += ended
        files.extend(paths)
    return files, count


async def withdraw_pending_under_consent(
    session: AsyncSession, consent_id: str, *, now: int, reason: str, blobs: BlobDir
) -> list[Path]:
    """Withdraw every pending message under ``consent_id``; files to unlink after commit."""
    files, _ = await withdraw_pending(session, consent_id, now=now, reason=reason, blobs=blobs)
    return files

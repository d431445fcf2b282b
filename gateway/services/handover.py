"""The recipient's side of a handover: the fetch (the first one marks the message
delivered) and the signed receipt (it ends the message and deletes the content), each
one unit of work (``gateway.services.request_unit``).

Who may do it: a *recipient device*, one of whose key versions the envelope was sealed
to (``gateway.services.message_access``: the same rules and the same answers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from gateway.blobs import unlink_all
from gateway.blobstore import Blobs, PgBlobReader
from gateway.caller import Caller, require_device
from gateway.db import audit_trail as audit
from gateway.db import handover_store
from gateway.db.engine import SessionMaker
from gateway.db.models import MessageRow
from gateway.db.units import Tx
from gateway.services.consents import consent_of
from gateway.services.directory import DirectoryService
from gateway.services.events import emit_in
from gateway.services.message_access import device_kids, gone
from gateway.services.message_content import (
    PENDING_STATES,
    destroy_content_in,
    devices_of,
    message_facts,
)
from gateway.services.request_unit import write_unit
from keys.crypto.canonical import canonical_json
from keys.domain.consent import Consent, require_in_force
from keys.domain.lifecycle import MessageEvent, MessageState, is_expired, is_pending, transition
from keys.errors import ReceiptInvalid, ReceiptMismatch
from keys.protocol.directory import Directory
from keys.protocol.problems import MessageExpired, MessageNotFound, ServiceUnavailable
from keys.protocol.receipt import parse_receipt, verify_receipt
from keys.protocol.vocabulary import Vocabulary, load_vocabulary


@dataclass(frozen=True)
class OpenBlob:
    handle: BinaryIO | PgBlobReader
    size: int


async def open_for_recipient(
    sessionmaker: SessionMaker,
    caller: Caller,
    message_id: str,
    *,
    directory: Directory,
    blobs: Blobs,
    now: int,
    directories: DirectoryService | None = None,
) -> OpenBlob:
    """Open the envelope for a recipient device; the first fetch marks it delivered.

    The blob is opened after the unit committed (a failed open answers 503; the recipient
    fetches again, and the fetch is audited again as ``message_fetched``)."""
    require_device(caller)

    def deliver(tx: Tx, current: Directory) -> tuple[MessageRow, bytes | None]:
        row = handover_store.message(tx.conn, message_id, for_update=True)
        if row is None:
            raise MessageNotFound()
        if not is_pending(row.state):
            if caller.unit == row.recipient_unit:
                raise gone(row.state)
            raise MessageNotFound()
        if not device_kids(current, caller) & set(handover_store.recipients(tx.conn, message_id)):
            raise MessageNotFound()
        # The job that ends the consent's messages may not have run yet: no bytes leave.
        require_in_force(_consent(tx, row.consent_id), now=now)
        if is_expired(row.expires, now=now) or row.blob_key is None:
            # The expiry job deletes it shortly; until then it is not handed out.
            raise MessageExpired()
        new_state = transition(row.state, MessageEvent.DELIVER)
        first = row.state == MessageState.ACCEPTED
        if first:
            handover_store.move(
                tx.conn,
                message_id,
                from_states=[str(MessageState.ACCEPTED)],
                values={"state": str(new_state), "delivered_at": now, "state_changed_at": now},
            )
            for device in devices_of([row.sender_kid]):
                emit_in(
                    tx,
                    device=device,
                    kind="outbox.delivered",
                    message_id=message_id,
                    data={"state": str(new_state)},
                    now=now,
                )
        audit.append(
            tx.conn,
            "message_delivered" if first else "message_fetched",
            now=now,
            message_id=message_id,
            kid=str(caller.kid),
            consent_id=row.consent_id,
            consent_version=row.consent_version,
        )
        # A small envelope stored in the database comes with the unit: no second read.
        return row, handover_store.single_chunk(tx.conn, row.blob_key)

    row, data = await write_unit(sessionmaker, caller, directory, deliver, directories=directories)
    if row.blob_key is None:  # pragma: no cover - deliver refused it
        raise MessageExpired()
    if data is not None:
        # The view checks len(data) against the row's size like a file's.
        return OpenBlob(PgBlobReader(None, row.blob_key, 1, len(data), preloaded=data), row.size)
    try:
        handle = await blobs.open_reader(row.blob_key)
    except FileNotFoundError:
        # Neither the file nor its temp name (BlobStore.open publishes a temp file a crash
        # left), or the message ended right after the unit: nothing to hand out; not the
        # caller's fault.
        raise ServiceUnavailable("the envelope is not available yet") from None
    return OpenBlob(handle, row.size)


def _consent(tx: Tx, consent_id: str) -> Consent | None:
    row = handover_store.consent(tx.conn, consent_id)
    return None if row is None else consent_of(row)


async def post_receipt(
    sessionmaker: SessionMaker,
    caller: Caller,
    message_id: str,
    raw: Mapping[str, Any],
    *,
    directory: Directory,
    blobs: Blobs,
    now: int,
    vocabulary: Vocabulary | None = None,
    directories: DirectoryService | None = None,
    on_handed_over: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Store a recipient device's signed receipt and delete the content at once.

    An ``accepted`` receipt hands the message over; a ``rejected`` one (with a reason
    code) ends the handover too, and the sender sees the rejection. Posting the same
    receipt again answers as the first time. ``on_handed_over`` hears the seconds from
    acceptance to handover once, after the commit (a metric; a retry is not counted).
    """
    require_device(caller)
    vocab = vocabulary or load_vocabulary()
    stored = canonical_json(dict(raw)).decode("utf-8")

    def hand_over(tx: Tx, current: Directory) -> tuple[dict[str, Any], list[Path], int | None]:
        conn = tx.conn
        row = handover_store.message(conn, message_id, for_update=True)
        if row is None:
            raise MessageNotFound()
        if not is_pending(row.state):
            if caller.unit != row.recipient_unit:
                raise MessageNotFound()
            if handover_store.receipt(conn, message_id) == stored:
                return _receipt_answer(row), [], None  # a retried receipt: same answer
            # A late receipt must not "hand over" what already ended otherwise.
            transition(row.state, MessageEvent.HAND_OVER)
        recipient_kids = handover_store.recipients(conn, message_id)
        if not device_kids(current, caller) & set(recipient_kids):
            raise MessageNotFound()
        # No handover recorded under an ended consent, even if the job has not run yet.
        require_in_force(_consent(tx, row.consent_id), now=now)
        if is_expired(row.expires, now=now):
            raise MessageExpired()
        parsed = parse_receipt(raw)
        if parsed.recipient != caller.kid:
            # Threat: one device acknowledging for another (the proof of handover must
            # name the device that took the content into its case file).
            raise ReceiptMismatch("the receipt must be signed by the calling device")
        receipt = verify_receipt(
            raw,
            current.signing_key(parsed.recipient),
            expected_message_id=message_id,
            expected_header_hash=row.header_hash,
            expected_recipients=[str(caller.kid)],
        )
        if not receipt.is_accepted and receipt.reason not in vocab.rejection_reasons:
            raise ReceiptInvalid("the rejection reason is not a known code")
        event = MessageEvent.HAND_OVER if receipt.is_accepted else MessageEvent.REJECT
        new_state = str(transition(row.state, event))  # not before a fetch (delivered)
        values: dict[str, Any] = {"state": new_state, "state_changed_at": now}
        if receipt.is_accepted:
            values["handed_over_at"] = now
        handover_store.move(conn, message_id, from_states=PENDING_STATES, values=values)
        # The position it verified at: the sender can verify it there again after the
        # signer's key is rotated away or revoked (a receipt stays proof of handover).
        handover_store.insert_receipt(conn, message_id, stored, current.size)
        files = destroy_content_in(tx, row, blobs=blobs)
        audit.append(
            conn,
            f"message_{new_state}",
            now=now,
            **message_facts(row),
            recipient=str(receipt.recipient),
            reason=receipt.reason,
            received_at=receipt.received_at,
        )
        for device in devices_of([row.sender_kid]):
            emit_in(
                tx,
                device=device,
                kind=f"outbox.{new_state}",
                message_id=message_id,
                data={"state": new_state, "reason": receipt.reason},
                now=now,
            )
        for device in devices_of(recipient_kids):
            if device != str(caller.kid.device):
                emit_in(
                    tx,
                    device=device,
                    kind="inbox.removed",
                    message_id=message_id,
                    data={"state": new_state},
                    now=now,
                )
        answer = {
            "message_id": row.id,
            "state": new_state,
            "handed_over_at": values.get("handed_over_at", row.handed_over_at),
            "state_changed_at": now,
        }
        return answer, files, now - row.accepted_at if receipt.is_accepted else None

    answer, files, latency = await write_unit(
        sessionmaker, caller, directory, hand_over, directories=directories
    )
    # The content's files go off the event loop (unlink and rmdir journal on the disk).
    if files:
        await asyncio.to_thread(unlink_all, files)
    if latency is not None and on_handed_over is not None:
        on_handed_over(latency)
    return answer


def _receipt_answer(row: MessageRow) -> dict[str, Any]:
    return {
        "message_id": row.id,
        "state": row.state,
        "handed_over_at": row.handed_over_at,
        "state_changed_at": row.state_changed_at,
    }

"""After the send: inbox, outbox, status, the stored receipt and recall (the fetch and
the receipt, the recipient's side of a handover, are ``gateway.services.handover``).

Who may see what:
- a *recipient device* is a device one of whose key versions the envelope was sealed to
  (matched per device, so a recipient that rotated its key since still collects and
  signs with its current key). Everyone else gets ``message_not_found`` — the same as
  for an id that does not exist, so existence does not leak;
- the *sender device* is the device whose key signed the envelope;
- once the content is deleted the recipient index is gone too, so for an ended message
  "recipient" widens to the recipient unit, which then learns only the final state
  (``message_gone``, 410).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

from gateway.blobs import unlink_all
from gateway.blobstore import Blobs
from gateway.caller import Caller, require_device
from gateway.db import message_store
from gateway.db.engine import SessionMaker
from gateway.db.models import MessageRow
from gateway.services.message_content import (
    PENDING_STATES,
    end_pending,
)
from keys.domain.lifecycle import MessageEvent, MessageState, is_pending, transition
from keys.protocol.directory import Directory
from keys.protocol.problems import (
    FieldInvalid,
    MessageGone,
    MessageNotFound,
    ReceiptNotFound,
)

_CURSOR = re.compile(r"^([0-9]{1,16})\.([0-9a-f-]{36})$")


def gone(state: str) -> MessageGone:
    # The state is one of the fixed lifecycle words, never caller input.
    return MessageGone(f"the message content is no longer held: {state}")


def device_kids(directory: Directory, caller: Caller) -> frozenset[str]:
    """Every key id of the caller's device (a rotated device keeps its older versions)."""
    kids = {str(caller.kid)}
    record = directory.devices.get(str(caller.kid.device))
    if record is not None:
        kids.update(str(record.kid(v)) for v in record.versions)
    return frozenset(kids)


def parse_cursor(text: str | None) -> tuple[int, str] | None:
    if text is None or text == "":
        return None
    match = _CURSOR.fullmatch(text)  # not match: "$" accepts a trailing newline
    if not match:
        raise FieldInvalid("after must be a cursor from a previous page")
    return int(match.group(1)), match.group(2)


def cursor_of(row: MessageRow) -> str:
    return f"{row.accepted_at}.{row.id}"


def receipt_summary(receipt_json: str | None) -> dict[str, Any] | None:
    if receipt_json is None:
        return None
    receipt = json.loads(receipt_json)
    return {
        "status": receipt["status"],
        "reason": receipt["reason"],
        "recipient": receipt["recipient"],
        "received_at": receipt["received_at"],
    }


def status_json(row: MessageRow, receipt_json: str | None) -> dict[str, Any]:
    receipt = receipt_summary(receipt_json)
    return {
        "message_id": row.id,
        "state": row.state,
        "sender": row.sender_kid,
        "recipient_unit": row.recipient_unit,
        "consent_id": row.consent_id,
        "consent_version": row.consent_version,
        "category": row.category,
        "purpose": row.purpose,
        "header_hash": row.header_hash,
        "size": row.size,
        "created": row.created,
        "expires": row.expires,
        "due": row.due,
        "accepted_at": row.accepted_at,
        "delivered_at": row.delivered_at,
        "handed_over_at": row.handed_over_at,
        "state_changed_at": row.state_changed_at,
        # When the overdue handover was escalated (sender and contacts told), or None.
        "escalated_at": row.escalated_at,
        # When a recipient key was revoked while it was pending (sender and unit told).
        "exposed_at": row.exposed_at,
        # A rejection returns the matter to the sender: the signed reason code at the
        # top level, so an outbox listing shows why without opening the receipt. Another
        # ending without a receipt gives the gateway's reason code (``consent_ended``,
        # ``not_collected``, the withdrawal's code).
        "reason": (
            receipt["reason"] if receipt and row.state == MessageState.REJECTED else row.end_reason
        ),
        "receipt": receipt,
    }


def inbox_item(row: MessageRow) -> dict[str, Any]:
    return {
        "message_id": row.id,
        "sender": row.sender_kid,
        "category": row.category,
        "purpose": row.purpose,
        "created": row.created,
        "expires": row.expires,
        "due": row.due,
        "size": row.size,
        "state": row.state,
        # A key it was sealed to was revoked while it waited: the unit must treat the
        # content as known to whoever holds that key (the inbox.exposed event says so once).
        "exposed_at": row.exposed_at,
    }


def _page(items: list[dict[str, Any]], rows: list[MessageRow], limit: int) -> dict[str, Any]:
    return {
        "messages": items,
        "next": cursor_of(rows[-1]) if len(rows) == limit else None,
    }


async def inbox(
    sessionmaker: SessionMaker,
    caller: Caller,
    *,
    directory: Directory,
    after: str | None,
    limit: int,
    now: int,
) -> dict[str, Any]:
    require_device(caller)
    async with sessionmaker() as session:
        rows = await message_store.inbox(
            session,
            device_kids(directory, caller),
            states=PENDING_STATES,
            now=now,
            after=parse_cursor(after),
            limit=limit,
        )
    return _page([inbox_item(r) for r in rows], rows, limit)


async def outbox(
    sessionmaker: SessionMaker,
    caller: Caller,
    *,
    directory: Directory,
    after: str | None,
    limit: int,
) -> dict[str, Any]:
    require_device(caller)
    async with sessionmaker() as session:
        rows = await message_store.outbox(
            session, device_kids(directory, caller), after=parse_cursor(after), limit=limit
        )
        receipts = await message_store.receipts(session, [r.id for r in rows])
    return _page([status_json(r, receipts.get(r.id)) for r in rows], rows, limit)


def _is_sender(row: MessageRow, kids: Collection[str]) -> bool:
    return row.sender_kid in kids


async def status(
    sessionmaker: SessionMaker, caller: Caller, message_id: str, *, directory: Directory
) -> dict[str, Any]:
    require_device(caller)
    kids = device_kids(directory, caller)
    async with sessionmaker() as session:
        row = await message_store.get(session, message_id)
        if row is None:
            raise MessageNotFound()
        if not _is_sender(row, kids):
            if is_pending(row.state):
                allowed = bool(kids & set(await message_store.recipients(session, message_id)))
            else:
                allowed = caller.unit == row.recipient_unit
            if not allowed:
                raise MessageNotFound()
        answer = status_json(row, await message_store.receipt(session, message_id))
        if answer["receipt"] is not None:
            # Where to verify the receipt again once its signer's key is gone (item of
            # the gateway's word: the sender checks it lies within the message's life).
            position = await message_store.receipt_position(session, message_id)
            answer["receipt"]["directory_size"] = position
        return answer


async def get_receipt(
    sessionmaker: SessionMaker, caller: Caller, message_id: str
) -> dict[str, Any]:
    """The signed receipt, for the sender's unit (the proof that the handover happened)."""
    require_device(caller)
    async with sessionmaker() as session:
        row = await message_store.get(session, message_id)
        if row is None or row.sender_unit != caller.unit:
            raise MessageNotFound()
        stored = await message_store.receipt(session, message_id)
    if stored is None:
        raise ReceiptNotFound()
    result: dict[str, Any] = json.loads(stored)
    return result


async def recall(
    sessionmaker: SessionMaker,
    caller: Caller,
    message_id: str,
    *,
    directory: Directory,
    blobs: Blobs,
    now: int,
) -> dict[str, Any]:
    """The sender device takes a message back before handover; content deleted at once."""
    require_device(caller)
    kids = device_kids(directory, caller)
    async with sessionmaker.begin() as session:
        row = await message_store.get(session, message_id, for_update=True)
        if row is None or not _is_sender(row, kids):
            raise MessageNotFound()
        # The pure rule refuses after handover: the content is in the recipient's case
        # file by then and "recalled" would tell the sender something untrue.
        transition(row.state, MessageEvent.RECALL)
        files = await end_pending(session, message_id, MessageEvent.RECALL, now=now, blobs=blobs)
        await session.refresh(row)
        answer = status_json(row, await message_store.receipt(session, message_id))
    unlink_all(files)
    return answer

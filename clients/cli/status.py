"""``stafett status [ID]`` and ``stafett recall ID`` (the sender's view of its messages).

``status`` lists what this device sent, as the gateway reports it (state, due time,
when an overdue handover was escalated), and verifies every receipt against the
recipient's directory key and the ``hH`` this device recorded when it sealed. For a
rejection the reason shown is the one in the *signed* receipt; the gateway's own copy
of the reason is only shown (marked unverified) when this installation cannot verify
the receipt. Threat: a gateway telling a sender "rejected: wrong district" for a
matter that was in fact handed over (or the reverse), steering where the case goes next.
"""

from __future__ import annotations

import argparse
from typing import Any

from clients.cli.common import Context
from clients.cli.receive import reason_label
from clients.cli.render import table, when
from clients.sdk import StafettClient
from keys.errors import KeysError

# What the gateway's status answer says, passed through to --json as is.
_FIELDS = (
    "message_id",
    "state",
    "recipient_unit",
    "consent_id",
    "category",
    "purpose",
    "accepted_at",
    "delivered_at",
    "handed_over_at",
    "state_changed_at",
    "expires",
    "due",
    "escalated_at",
    "exposed_at",
)

# States a message reaches without a receipt; the gateway's reason code says why.
_ENDED_BY_GATEWAY = frozenset({"expired", "withdrawn"})


async def _outbox(client: StafettClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = await client.outbox(after)
        items.extend(m for m in page.get("messages", []) if isinstance(m, dict))
        after = page.get("next")
        if not after:
            return items


async def _verified_receipt(
    ctx: Context, client: StafettClient, item: dict[str, Any]
) -> dict[str, Any] | None:
    """The receipt as this device verified it; None when the gateway holds none."""
    summary = item.get("receipt")
    if not isinstance(summary, dict):
        return None
    sent = ctx.home.record("sent", str(item["message_id"]))
    if sent is None:  # sent from another installation: nothing to verify against
        return {**summary, "verified": False, "error": None}
    recorded = sent.get("receipt_directory_size")
    try:
        verified = await client.receipt(
            str(item["message_id"]),
            header_hash=str(sent["header_hash"]),
            recipients=[str(r) for r in sent["recipients"]],
            as_of=recorded if type(recorded) is int else None,
        )
    except KeysError as exc:
        # Threat: a gateway presenting a forged or misattributed proof of handover.
        return {"verified": False, "error": exc.code}
    if recorded is None and verified.directory_size is not None:
        # Where this device verified it: later checks do not need the gateway's word.
        ctx.home.save_record(
            "sent",
            str(item["message_id"]),
            {**sent, "receipt_directory_size": verified.directory_size},
        )
    return {
        "key_since": verified.key_since,
        "verified": True,
        "error": None,
        "recipient": verified.recipient,
        "recipient_fingerprint": verified.recipient_fingerprint,
        "accepted": verified.accepted,
        "reason": verified.reason,
        "received_at": verified.received_at,
    }


def _reason(
    ctx: Context, item: dict[str, Any], receipt: dict[str, Any] | None
) -> tuple[str | None, bool]:
    """``(reason code, verified)`` of a rejection: the signed one wins over the gateway's."""
    claimed = item.get("reason") if isinstance(item.get("reason"), str) else None
    if receipt is not None and receipt["verified"]:
        signed = receipt["reason"] if not receipt["accepted"] else None
        state = "handed_over" if receipt["accepted"] else "rejected"
        if claimed != signed or item.get("state") != state:
            # The signed receipt is the proof; the gateway's summary disagrees with it.
            ctx.out.warn(ctx.texts("receipt_mismatch", message_id=item.get("message_id")))
        return signed, signed is not None
    return claimed, False


def _receipt_note(ctx: Context, receipt: dict[str, Any] | None, reason_label: str | None) -> str:
    t = ctx.texts
    if receipt is None:
        return ""
    if not receipt["verified"]:
        if receipt["error"]:
            return t("receipt_invalid", code=receipt["error"])
        if reason_label is not None:
            return t("receipt_rejected_unverified", reason=reason_label)
        return t("receipt_unverified")
    if not receipt["accepted"]:
        return t("receipt_rejected", recipient=receipt["recipient"], reason=reason_label or "?")
    key = {"revoked": "receipt_verified_revoked", "destroyed": "receipt_verified_rotated"}.get(
        str(receipt.get("key_since")), "receipt_verified"
    )
    return t(key, recipient=receipt["recipient"], time=when(receipt["received_at"]))


async def cmd_status(ctx: Context, args: argparse.Namespace) -> None:
    async with ctx.client() as client:
        if args.message_id:
            items = [await client.status(args.message_id)]
        else:
            items = await _outbox(client)
        rows, docs = [], []
        for item in items:
            receipt = await _verified_receipt(ctx, client, item)
            reason, reason_verified = _reason(ctx, item, receipt)
            label = ctx.label("rejection_reasons", reason) if reason else None
            state = str(item.get("state"))
            state_text = ctx.texts(f"state_{state}")
            if reason and state in _ENDED_BY_GATEWAY:
                # Why it ended without a handover (consent_ended, not_collected, ...).
                label = reason_label(ctx, reason, "withdrawal_reasons")
                state_text = f"{state_text}: {label}"
            rows.append(
                [
                    str(item.get("message_id")),
                    str(item.get("recipient_unit")),
                    ctx.label("categories", str(item.get("category"))),
                    when(item.get("accepted_at")),
                    when(item.get("due")),
                    state_text
                    + (
                        ctx.texts("state_exposed_note")
                        if item.get("exposed_at") is not None
                        else ""
                    ),
                    when(item.get("escalated_at")),
                    _receipt_note(ctx, receipt, label),
                ]
            )
            docs.append(
                {
                    **{k: item.get(k) for k in _FIELDS},
                    "reason": reason,
                    "reason_label": label,
                    "reason_verified": reason_verified,
                    "receipt": receipt,
                }
            )
    ctx.home.save_keystore_if_changed()
    if not rows:
        ctx.out.line(ctx.texts("status_empty"))
    else:
        t = ctx.texts
        header = ["col_message", "col_to", "col_category", "col_sent", "col_due", "col_state"]
        header += ["col_escalated", "col_receipt"]
        ctx.out.line(table([t(h) for h in header], rows))
    ctx.out.emit({"messages": docs})


async def cmd_recall(ctx: Context, args: argparse.Namespace) -> None:
    """Take a message back before it is handed over; the gateway deletes its content.

    After a handover (or any other end) the gateway refuses with
    ``message_state_conflict``: the content is in the recipient's case file by then.
    """
    async with ctx.client() as client:
        answer = await client.recall(args.message_id)
    state = ctx.texts(f"state_{answer.get('state')}")
    ctx.out.line(ctx.texts("recalled", message_id=args.message_id, state=state))
    ctx.out.emit({"message_id": args.message_id, "state": answer.get("state")})

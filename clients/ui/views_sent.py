"""Sent: each message's state, due time and escalation, and the receipt as this computer
verified it (recipient's directory key, the ``hH`` recorded when it was sealed).

A rejection's reason shown is the one in the *signed* receipt; the gateway's copy is
not shown as verified (threat: a gateway telling the sender "rejected: wrong district"
for a matter that was handed over, steering where the case goes next).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from clients.ui import device
from clients.ui.pages import VAULT, FormErrors, problem_text, render, see_other, texts
from clients.ui.vault import Vault
from clients.ui.views_inbox import all_pages
from keys.errors import KeysError

routes = web.RouteTableDef()


async def _receipt(vault: Vault, item: dict[str, Any]) -> dict[str, Any] | None:
    if not isinstance(item.get("receipt"), dict):
        return None
    message_id = str(item.get("message_id"))
    sent = device.record(vault.settings.home, "sent", message_id)
    if sent is None:
        return {"verified": False, "elsewhere": True}
    try:
        verified = await vault.client.receipt(
            message_id,
            header_hash=str(sent["header_hash"]),
            recipients=[str(r) for r in sent["recipients"]],
        )
    except (KeysError, KeyError) as exc:
        return {"verified": False, "code": getattr(exc, "code", "receipt_invalid")}
    return {
        "verified": True,
        "recipient": verified.recipient,
        "fingerprint": verified.recipient_fingerprint,
        "accepted": verified.accepted,
        "reason": verified.reason,
        "received_at": verified.received_at,
    }


@routes.get("/sent")
async def sent(request: web.Request) -> web.StreamResponse:
    vault = request.app[VAULT]
    t = texts(request)
    rows: list[dict[str, Any]] = []
    error = None
    try:
        await vault.sync()
        items = await all_pages(vault.client, outbox=True)
        for item in sorted(items, key=lambda m: -int(m.get("created") or 0)):
            rows.append({**item, "verified_receipt": await _receipt(vault, item)})
    except Exception as exc:
        error = problem_text(t, exc)
    just_sent = request.query.get("sent", "")
    sent_row = next((r for r in rows if r.get("message_id") == just_sent), None)
    notice = t("ui_recalled") if request.query.get("recalled") == "1" else None
    context = {"rows": rows, "error": error, "just_sent": sent_row, "notice": notice}
    return render(request, "sent.html", context)


# A recall takes back what the recipient has not handed over yet; the gateway decides
# (only the sender, only while pending) and answers a refusal with its code.
RECALLABLE = ("accepted", "delivered")


def _message_id(request: web.Request) -> str:
    message_id = request.match_info["message_id"]
    if not device.is_message_id(message_id):  # threat: ``../`` or junk in a path
        raise web.HTTPNotFound()
    return message_id


async def _recall_page(
    request: web.Request, message_id: str, errors: FormErrors
) -> web.StreamResponse:
    vault = request.app[VAULT]
    try:
        item = await vault.client.status(message_id)
    except Exception as exc:
        item = {"message_id": message_id}
        errors.add("confirm", problem_text(texts(request), exc))
    context = {"m": item, "errors": errors, "recallable": item.get("state") in RECALLABLE}
    return render(request, "recall.html", context, status=400 if errors else 200)


@routes.get("/sent/{message_id}/recall")
async def recall_page(request: web.Request) -> web.StreamResponse:
    return await _recall_page(request, _message_id(request), FormErrors())


@routes.post("/sent/{message_id}/recall")
async def recall(request: web.Request) -> web.StreamResponse:
    message_id = _message_id(request)
    form = await request.post()
    t = texts(request)
    errors = FormErrors()
    if form.get("confirm") != "yes":
        # Irreversible: the recipient can no longer open it. Confirmed on the page.
        errors.add("confirm", t("ui_recall_confirm_needed"))
        return await _recall_page(request, message_id, errors)
    try:
        await request.app[VAULT].client.recall(message_id)
    except Exception as exc:
        errors.add("confirm", problem_text(t, exc))
        return await _recall_page(request, message_id, errors)
    raise see_other("/sent?recalled=1")

"""Inbox, open (verify + decrypt in this process), downloads, "Ta emot" and "Avvisa"."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from clients.sdk import StafettClient
from clients.ui import device, vocab
from clients.ui.pages import VAULT, FormErrors, form_str, problem_text, render, see_other, texts
from clients.ui.units import unit_names

routes = web.RouteTableDef()


async def all_pages(client: StafettClient, outbox: bool = False) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = await (client.outbox(after) if outbox else client.inbox(after))
        items.extend(m for m in page.get("messages", []) if isinstance(m, dict))
        after = page.get("next")
        if not after:
            return items


def _message_id(request: web.Request) -> str:
    message_id = request.match_info["message_id"]
    if not device.is_message_id(message_id):
        raise web.HTTPNotFound()
    return message_id


@routes.get("/inbox")
async def inbox(request: web.Request) -> web.StreamResponse:
    vault = request.app[VAULT]
    t = texts(request)
    error = None
    items: list[dict[str, Any]] = []
    try:
        directory = await vault.sync()
        items = await all_pages(vault.client)
    except Exception as exc:
        error = problem_text(t, exc)
        directory = None
    now = int(time.time())
    rows = []
    for m in items:
        sender = str(m.get("sender") or "")
        unit = sender.split("/", 1)[0]
        opened = vault.opened.get(str(m.get("message_id")))
        unit_name = unit_names(directory).get(unit, unit) if directory is not None else unit
        due = m.get("due") if type(m.get("due")) is int else None
        rows.append(
            {
                "id": str(m.get("message_id")),
                "unit": unit,
                "unit_name": unit_name,
                "officer": sender.split("/")[1] if sender.count("/") >= 1 else "",
                "category": str(m.get("category")),
                "purpose": str(m.get("purpose")),
                "received": m.get("created"),
                "due": due,
                "overdue": due is not None and due < now,
                "size": _size(m.get("size")),
                "files": len(opened.files) if opened else None,
                "state": str(m.get("state")),
                "opened": opened is not None,
                # Encrypted to a key that was revoked since: someone may have read it.
                "exposed": m.get("exposed_at") is not None or m.get("state") == "exposed",
            }
        )
    done = request.query.get("done")
    notice = t(f"ui_done_{done}") if done in ("accepted", "rejected") else None
    return render(request, "inbox.html", {"rows": rows, "error": error, "notice": notice})


def _size(value: Any) -> str:
    if type(value) is not int:
        return "—"
    if value < 1 << 20:
        return f"{max(1, value // 1024)} KB"
    return f"{value / (1 << 20):.1f} MB"


@routes.get("/messages/{message_id}")
async def message(request: web.Request) -> web.StreamResponse:
    message_id = _message_id(request)
    content = request.app[VAULT].opened.get(message_id)
    return render(request, "message.html", {"message_id": message_id, "content": content})


@routes.post("/messages/{message_id}/open")
async def open_message(request: web.Request) -> web.StreamResponse:
    message_id = _message_id(request)
    try:
        await request.app[VAULT].open_message(message_id)
    except Exception as exc:
        return render(
            request,
            "message.html",
            {"message_id": message_id, "content": None, "error": problem_text(texts(request), exc)},
            status=400,
        )
    raise see_other(f"/messages/{message_id}")


@routes.get("/messages/{message_id}/files/{index}")
async def download(request: web.Request) -> web.StreamResponse:
    """A deliberate download: the browser's save dialog, never shown inline (threat:
    an attached HTML or SVG file running as this app's origin)."""
    message_id = _message_id(request)
    content = request.app[VAULT].opened.get(message_id)
    try:
        index = int(request.match_info["index"])
        name = sorted(content.files)[index] if content else None
    except (ValueError, IndexError):
        name = None
    if content is None or name is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=content.files[name],
        content_type="application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


@routes.post("/messages/{message_id}/accept")
async def accept(request: web.Request) -> web.StreamResponse:
    message_id = _message_id(request)
    try:
        await request.app[VAULT].hand_over(message_id, "accepted", None)
    except Exception as exc:
        content = request.app[VAULT].opened.get(message_id)
        context = {"message_id": message_id, "content": content}
        return render(
            request,
            "message.html",
            {**context, "error": problem_text(texts(request), exc)},
            status=400,
        )
    raise see_other("/inbox?done=accepted")


@routes.get("/messages/{message_id}/reject")
async def reject_page(request: web.Request) -> web.StreamResponse:
    message_id = _message_id(request)
    return render(request, "reject.html", _reject_context(request, message_id))


def _reject_context(request: web.Request, message_id: str) -> dict[str, Any]:
    t = texts(request)
    return {
        "message_id": message_id,
        "reasons": vocab.choices("rejection_reasons", t.language),
        "chosen": "",
    }


@routes.post("/messages/{message_id}/reject")
async def reject(request: web.Request) -> web.StreamResponse:
    message_id = _message_id(request)
    form = await request.post()
    reason = form_str(form, "reason", 64)
    t = texts(request)
    errors = FormErrors()
    if reason not in vocab.terms("rejection_reasons"):
        errors.add("reason", t("ui_reject_choose"))
    else:
        try:
            await request.app[VAULT].hand_over(message_id, "rejected", reason)
        except Exception as exc:
            errors.add("reason", problem_text(t, exc))
    if errors:
        context = {**_reject_context(request, message_id), "chosen": reason, "errors": errors}
        return render(request, "reject.html", context, status=400)
    raise see_other("/inbox?done=rejected")

"""Compose: recipient unit or named officers from the verified directory, category and
purpose from the vocabulary, text and files, and the consent chosen for the subject.

The personnummer is validated on this computer and turned into the subject reference
(``StafettClient.subject_ref``); it is never sent to the gateway, never logged and never
stored. If no active, verified consent covers sender unit → recipient unit × category ×
purpose, the page says so and nothing is sealed or sent.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from aiohttp import web

from clients.ui import device, vocab
from clients.ui.consents import ConsentView, views
from clients.ui.content import Upload, pack_upload
from clients.ui.pages import (
    VAULT,
    FormErrors,
    form_list,
    form_str,
    problem_text,
    render,
    see_other,
    texts,
)
from clients.ui.units import unit_names
from keys.errors import SubjectIdInvalid
from keys.protocol.directory import Directory

routes = web.RouteTableDef()
DAY = 86_400
MAX_DAYS = 60
MAX_TEXT = 1 << 20


def _directory_choices(directory: Directory, own_unit: str) -> dict[str, Any]:
    names = unit_names(directory)
    units = sorted(
        ((u, names[u]) for u in directory.units if u != own_unit),
        key=lambda pair: pair[1].casefold(),
    )
    # Named officers of the other units (the page shows only the chosen unit's).
    officers = sorted(
        (str(rec.device), rec.device.unit, names.get(rec.device.unit, rec.device.unit))
        for rec in directory.devices.values()
        if not rec.revoked and rec.role == "officer" and rec.device.unit != own_unit
    )
    return {"units": units, "officers": officers}


async def _page(
    request: web.Request, values: dict[str, Any], errors: FormErrors, **extra: Any
) -> web.Response:
    vault = request.app[VAULT]
    t = texts(request)
    directory = await vault.sync()
    context = {
        **_directory_choices(directory, vault.client.unit),
        "categories": vocab.choices("categories", t.language),
        "purposes": vocab.choices("purposes", t.language),
        "values": values,
        "errors": errors,
        "covering": [],
        "others": [],
        "checked": False,
        **extra,
    }
    return render(request, "compose.html", context, status=400 if errors else 200)


@routes.get("/compose")
async def compose(request: web.Request) -> web.StreamResponse:
    values = {
        "to": request.query.get("to", ""),
        "category": request.query.get("category", ""),
        "purpose": request.query.get("purpose", ""),
        "days": "14",
        "officers": [],
    }
    return await _page(request, values, FormErrors())


def _uploads(form: Any) -> list[Upload]:
    out = []
    for item in form.getall("files", []):
        if isinstance(item, web.FileField) and item.filename:
            handle = item.file
            handle.seek(0, 2)
            out.append(Upload(item.filename, handle, handle.tell()))
    return out


@routes.post("/compose")
async def send(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    t = texts(request)
    vault = request.app[VAULT]
    client = vault.client
    values: dict[str, Any] = {
        name: form_str(form, name, MAX_TEXT if name == "text" else 200)
        for name in ("to", "category", "purpose", "pnr", "text", "days", "consent_id")
    }
    values["officers"] = form_list(form, "officer")
    uploads = _uploads(form)
    errors = FormErrors()
    directory = await vault.sync()
    to = values["to"]
    if to not in directory.units or to == client.unit:
        errors.add("to", t("ui_unit_needed"))
    for officer in values["officers"]:
        record = directory.devices.get(officer)
        if record is None or record.revoked or record.device.unit != to:
            errors.add("officers", t("ui_officer_wrong", device=officer))
    if values["category"] not in vocab.terms("categories"):
        errors.add("category", t("ui_category_needed"))
    if values["purpose"] not in vocab.terms("purposes"):
        errors.add("purpose", t("ui_purpose_needed"))
    subject_ref = None
    if not values["pnr"]:
        errors.add("pnr", t("ui_pnr_needed"))
    else:
        try:
            subject_ref = client.subject_ref(values["pnr"])
        except SubjectIdInvalid:
            errors.add("pnr", t("ui_pnr_invalid"))
    checking = form.get("action") == "check"
    if not checking and not values["text"] and not uploads:
        errors.add("text", t("ui_nothing_to_send"))
    try:
        days = int(values["days"] or "14")
        if not 1 <= days <= MAX_DAYS:
            raise ValueError
    except ValueError:
        errors.add("days", t("ui_days_invalid"))
        days = 14
    covering: list[ConsentView] = []
    others: list[ConsentView] = []
    if (
        subject_ref is not None
        and "to" not in errors.items
        and not errors.items.keys()
        & {
            "category",
            "purpose",
        }
    ):
        now = int(time.time())
        for view in views(directory, await client.list_consents(subject_ref)):
            covers = view.covers(client.unit, to, values["category"], values["purpose"], now)
            (covering if covers else others).append(view)
        if not covering:
            errors.add(
                "pnr",
                t(
                    "ui_consent_none",
                    from_unit=client.unit,
                    to_unit=to,
                    category=vocab.label("categories", values["category"], t.language),
                    purpose=vocab.label("purposes", values["purpose"], t.language),
                ),
            )
    extra = {"covering": covering, "others": others, "checked": subject_ref is not None}
    if errors or checking:
        return await _page(request, values, errors, **extra)
    chosen = next((c for c in covering if c.consent_id == values["consent_id"]), covering[0])
    assert subject_ref is not None
    try:
        message_id = await _seal_and_send(request, values, uploads, chosen, subject_ref, days)
    except Exception as exc:
        errors.add("to", problem_text(t, exc))
        return await _page(request, values, errors, **extra)
    raise see_other(f"/sent?sent={message_id}")


async def _seal_and_send(
    request: web.Request,
    values: dict[str, Any],
    uploads: list[Upload],
    consent: ConsentView,
    subject_ref: str,
    days: int,
) -> str:
    vault = request.app[VAULT]
    client = vault.client
    text = values["text"].encode() if values["text"] else None
    # The plaintext bundle lives 0600 in the private folder only while it is sealed.
    bundle = vault.private_dir / f"{uuid.uuid4().hex}.bundle"
    try:
        pack_upload(bundle, text, uploads)
        result = await client.send(
            recipient_unit=values["to"],
            consent_id=consent.consent_id,
            subject_ref=subject_ref,
            category=values["category"],
            purpose=values["purpose"],
            body=bundle,
            expires_in_s=days * DAY,
            devices=values["officers"] or None,
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            bundle.unlink()
    # The CLI's record: ``stafett status`` verifies this receipt too.
    device.save_record(
        vault.settings.home,
        "sent",
        result.message_id,
        {
            "message_id": result.message_id,
            "header_hash": result.header_hash,
            "recipients": list(result.recipients),
            "to": values["to"],
            "consent_id": consent.consent_id,
            "category": values["category"],
            "purpose": values["purpose"],
            "sent_at": int(time.time()),
            "expires": result.expires,
            "due": result.due,
        },
    )
    return result.message_id

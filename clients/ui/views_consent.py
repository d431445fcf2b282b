"""Consents: record (guided), print the consent form, list a subject's, withdraw.

The personnummer is posted to this local app only (never in a URL: history), turned
into the subject reference here, and not kept. A written consent's scanned form is
hashed here (BLAKE2b-256) and only the hash is sent: the form stays in the case file.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

from clients.cli.render import CITY_TZ
from clients.ui import device, vocab
from clients.ui.consent_form import evidence_hash, form_fields
from clients.ui.consents import views
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
from keys.errors import SubjectIdInvalid

routes = web.RouteTableDef()
MAX_DAYS = 366  # the gateway's default limit is 12 months


def _consent_id(request: web.Request) -> str:
    consent_id = request.match_info["consent_id"]
    if not device.is_message_id(consent_id):  # consent ids are UUIDs too
        raise web.HTTPNotFound()
    return consent_id


@routes.get("/consents")
async def consents_page(request: web.Request) -> web.StreamResponse:
    done = request.query.get("withdrawn")
    notice = None
    if done is not None and done.isdigit():
        notice = texts(request)("ui_consent_withdrawn", n=int(done))
    return render(request, "consents.html", {"values": {}, "items": None, "notice": notice})


@routes.post("/consents")
async def list_consents(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    t = texts(request)
    vault = request.app[VAULT]
    errors = FormErrors()
    pnr = form_str(form, "pnr", 40)
    items = None
    try:
        subject_ref = vault.client.subject_ref(pnr)
    except SubjectIdInvalid:
        errors.add("pnr", t("ui_pnr_invalid"))
    else:
        try:
            directory = await vault.sync()
            items = views(directory, await vault.client.list_consents(subject_ref))
        except Exception as exc:
            errors.add("pnr", problem_text(t, exc))
    context = {"values": {"pnr": pnr}, "items": items, "errors": errors}
    return render(request, "consents.html", context, status=400 if errors else 200)


async def _record_page(
    request: web.Request, values: dict[str, Any], errors: FormErrors
) -> web.Response:
    vault = request.app[VAULT]
    t = texts(request)
    directory = await vault.sync()
    own = vault.client.unit
    others = sorted(u for u in directory.units if u != own)
    pairs = [(own, o) for o in others] + [(o, own) for o in others]
    names = {u: rec.name for u, rec in directory.units.items()}
    context = {
        "pairs": [(f"{a}:{b}", names.get(a, a), names.get(b, b)) for a, b in pairs],
        "categories": vocab.choices("categories", t.language),
        "purposes": vocab.choices("purposes", t.language),
        "values": values,
        "errors": errors,
    }
    return render(request, "consent_new.html", context, status=400 if errors else 200)


@routes.get("/consents/new")
async def record_page(request: web.Request) -> web.StreamResponse:
    until = (datetime.now(CITY_TZ).date() + timedelta(days=180)).isoformat()
    values = {"pairs": [], "categories": [], "purposes": [], "until": until, "form": ""}
    return await _record_page(request, values, FormErrors())


def _end_of(day_text: str, today: date) -> int | None:
    try:
        chosen = date.fromisoformat(day_text)
    except ValueError:
        return None
    if not today < chosen <= today + timedelta(days=MAX_DAYS):
        return None
    return int(datetime.combine(chosen, datetime.max.time(), CITY_TZ).timestamp())


@routes.post("/consents/new")
async def record(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    t = texts(request)
    vault = request.app[VAULT]
    client = vault.client
    values: dict[str, Any] = {
        "pairs": form_list(form, "pair"),
        "categories": [c for c in form_list(form, "category") if c in vocab.terms("categories")],
        "purposes": [p for p in form_list(form, "purpose") if p in vocab.terms("purposes")],
        **{n: form_str(form, n, 2000) for n in ("pnr", "until", "form", "witness", "note")},
        "minor": form.get("minor") == "yes",
    }
    errors = FormErrors()
    subject_ref = None
    try:
        subject_ref = client.subject_ref(values["pnr"])
    except SubjectIdInvalid:
        errors.add("pnr", t("ui_pnr_invalid" if values["pnr"] else "ui_pnr_needed"))
    directory = await vault.sync()
    pairs = []
    for text in values["pairs"]:
        left, _, right = text.partition(":")
        if left in directory.units and right in directory.units and left != right:
            pairs.append({"from": left, "to": right})
    if not pairs:
        errors.add("pairs", t("ui_consent_pairs_needed"))
    if not values["categories"]:
        errors.add("categories", t("ui_consent_categories_needed"))
    if not values["purposes"]:
        errors.add("purposes", t("ui_consent_purposes_needed"))
    now = int(time.time())
    valid_until = _end_of(values["until"], datetime.now(CITY_TZ).date())
    if valid_until is None:
        errors.add("until", t("ui_consent_until_invalid"))
    evidence = await evidence_hash(form.get("evidence"))
    guardian = await evidence_hash(form.get("guardian_evidence"))
    how = form_fields(values["form"], evidence, values["witness"], values["note"])
    if how is None:
        key = {
            "written": ("evidence", "ui_consent_evidence_needed"),
            "oral": ("witness", "ui_consent_oral_needed"),
        }.get(values["form"], ("form", "ui_consent_form_needed"))
        errors.add(key[0], t(key[1]))
    if values["minor"] and guardian is None:
        errors.add("guardian_evidence", t("ui_consent_guardian_needed"))
    if errors or subject_ref is None or valid_until is None or how is None:
        return await _record_page(request, values, errors)
    fields: dict[str, Any] = {
        "subject_ref": subject_ref,
        "pairs": pairs,
        "categories": values["categories"],
        "purposes": values["purposes"],
        "valid_from": now,
        "valid_until": valid_until,
        "form": values["form"],
        **how,
        "obtained_by": str(client.kid.device),
        "obtained_at": now,
        "minor": values["minor"],
        "guardians": [{"form": "written", **(form_fields("written", guardian, "", "") or {})}]
        if guardian
        else [],
        "covers_processing": True,
    }
    try:
        consent_id = await client.record_consent(fields)
    except Exception as exc:
        errors.add("pnr", problem_text(t, exc))
        return await _record_page(request, values, errors)
    raise see_other(f"/consents/{consent_id}/print?new=1")


@routes.get("/consents/{consent_id}/print")
async def print_form(request: web.Request) -> web.StreamResponse:
    """The samtyckesblankett: plain Swedish, for the person to read and sign; its scan
    then becomes the evidence of a written consent."""
    consent_id = _consent_id(request)
    vault = request.app[VAULT]
    directory = await vault.sync()
    found = views(directory, [await vault.client.get_consent(consent_id)])[0]
    names = {u: rec.name for u, rec in directory.units.items()}
    context = {
        "consent": found,
        "names": names,
        "new": request.query.get("new") == "1",
    }
    return render(request, "consent_print.html", context)


@routes.get("/consents/{consent_id}/withdraw")
async def withdraw_page(request: web.Request) -> web.StreamResponse:
    return _withdraw_render(request, _consent_id(request), {}, FormErrors())


def _withdraw_render(
    request: web.Request, consent_id: str, values: dict[str, Any], errors: FormErrors
) -> web.Response:
    t = texts(request)
    context = {
        "consent_id": consent_id,
        "reasons": vocab.choices("withdrawal_reasons", t.language),
        "values": values,
        "errors": errors,
    }
    return render(request, "consent_withdraw.html", context, status=400 if errors else 200)


@routes.post("/consents/{consent_id}/withdraw")
async def withdraw(request: web.Request) -> web.StreamResponse:
    consent_id = _consent_id(request)
    form = await request.post()
    t = texts(request)
    values = {"reason": form_str(form, "reason", 64), "confirm": form.get("confirm") == "yes"}
    errors = FormErrors()
    if values["reason"] not in vocab.terms("withdrawal_reasons"):
        errors.add("reason", t("ui_consent_withdraw_reason_needed"))
    if not values["confirm"]:
        errors.add("confirm", t("ui_consent_withdraw_confirm_needed"))
    if not errors:
        try:
            answer = await request.app[VAULT].client.withdraw_consent(
                consent_id, str(values["reason"])
            )
        except Exception as exc:
            errors.add("reason", problem_text(t, exc))
        else:
            raise see_other(f"/consents?withdrawn={int(answer.get('messages_withdrawn', 0))}")
    return _withdraw_render(request, consent_id, values, errors)

"""Consents: record (guided), print the consent form, list a subject's, withdraw.

The personnummer is posted to this local app only (never in a URL: history), turned
into the subject reference and the person's age here, and not kept. A written
consent's scanned form is hashed here (BLAKE2b-256) and only the hash is sent: the form
stays in the case file. An oral consent's witness and note stay on this computer
(``consents/<id>.json``, as the CLI keeps them); only their salted hash is sent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

from clients.local import consents as local_consents
from clients.local.timefmt import CITY_TZ
from clients.ui import device, vocab
from clients.ui.consent_form import evidence_hash, evidence_hashes
from clients.ui.consents import views
from clients.ui.pages import (
    SETTINGS,
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
from keys.crypto.consent_free_text import FreeText
from keys.errors import KeysError, SubjectIdInvalid

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
    names = unit_names(directory)
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


def _how(
    values: dict[str, Any], evidence: str | None, errors: FormErrors, t: Any
) -> tuple[dict[str, Any] | None, FreeText | None]:
    """The record's form fields and an oral consent's free text (kept here)."""
    if values["form"] == "written":
        if evidence is None:
            errors.add("evidence", t("ui_consent_evidence_needed"))
            return None, None
        return local_consents.written(evidence), None
    if values["form"] == "oral":
        try:
            oral = local_consents.oral(values["witness"], values["note"])
        except KeysError:
            errors.add("witness", t("ui_consent_oral_too_long"))
            return None, None
        if oral is None:
            errors.add("witness", t("ui_consent_oral_needed"))
            return None, None
        return oral
    errors.add("form", t("ui_consent_form_needed"))
    return None, None


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
    }
    errors = FormErrors()
    subject_ref, age = None, 0
    try:
        subject_ref, age = client.subject_ref_and_age(values["pnr"])
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
    how, free_text = _how(values, await evidence_hash(form.get("evidence")), errors, t)
    guardians = await evidence_hashes(form.getall("guardian_evidence", []))
    # The age comes from the number, never from a box the officer may forget to tick
    # (threat: a minor recorded as an adult; the police require the guardians' consent).
    minor = subject_ref is not None and local_consents.is_minor(age)
    if minor and not guardians:
        errors.add("guardian_evidence", t("ui_consent_guardian_needed_age", age=age))
    if errors or subject_ref is None or valid_until is None or how is None:
        return await _record_page(request, values, errors)
    consent_id = str(uuid.uuid4())
    fields: dict[str, Any] = {
        "consent_id": consent_id,
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
        "minor": minor,
        "guardians": [{"form": "written", **local_consents.written(g)} for g in guardians],
        "covers_processing": True,
    }
    home = request.app[SETTINGS].home
    if free_text is not None:
        # Kept before anything is sent: a record naming a text never kept proves nothing.
        await asyncio.to_thread(local_consents.keep_free_text, home, consent_id, free_text)
    try:
        recorded_id = await client.record_consent(fields)
    except Exception as exc:
        if free_text is not None:
            local_consents.drop_free_text(home, consent_id)
        errors.add("pnr", problem_text(t, exc))
        return await _record_page(request, values, errors)
    if recorded_id != consent_id:
        # The gateway already holds an identical active consent and stored nothing:
        # this attempt's local text names nothing; the page shows the existing one.
        if free_text is not None:
            local_consents.drop_free_text(home, consent_id)
        raise see_other(f"/consents/{recorded_id}/print?existing=1")
    raise see_other(f"/consents/{consent_id}/print?new=1")


@routes.get("/consents/{consent_id}/print")
async def print_form(request: web.Request) -> web.StreamResponse:
    """The samtyckesblankett: plain Swedish, for the person to read and sign; its scan
    then becomes the evidence of a written consent."""
    consent_id = _consent_id(request)
    vault = request.app[VAULT]
    directory = await vault.sync()
    found = views(directory, [await vault.client.get_consent(consent_id)])[0]
    names = unit_names(directory)
    kept = None
    free_text_hash = found.record.get("free_text_hash")
    if isinstance(free_text_hash, str):
        kept = local_consents.kept_free_text(request.app[SETTINGS].home, consent_id, free_text_hash)
    context = {
        "consent": found,
        "names": names,
        "new": request.query.get("new") == "1",
        "existing": request.query.get("existing") == "1",
        "kept": kept,
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

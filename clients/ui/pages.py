"""Shared page helpers: the app's typed keys, rendering with the common context, the
error summary of a form, and the translation of refusals into plain sentences."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from clients.cli.texts import Texts
from clients.errors import GatewayUnavailable
from clients.local.timefmt import day, when
from clients.ui import vocab
from clients.ui.guard import CSRF_FIELD, Guard
from clients.ui.live import Broker
from clients.ui.settings import UiSettings
from clients.ui.units import unit_names
from clients.ui.vault import Locked, Vault
from keys.errors import REGISTRY, KeysError
from keys.protocol.titles import title

SETTINGS = web.AppKey("settings", UiSettings)
VAULT = web.AppKey("vault", Vault)
GUARD = web.AppKey("guard", Guard)
BROKER = web.AppKey("broker", Broker)
PUMP = web.AppKey("pump", dict[str, "asyncio.Task[None]"])


@dataclass
class FormErrors:
    """Field name → message, in the order the fields appear (the error summary links
    to each field by id: GOV.UK's pattern, and WCAG 3.3.1)."""

    items: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.items.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.items)


def texts(request: web.Request) -> Texts:
    return Texts(request.app[GUARD].language)


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    t = texts(request)
    vault = request.app[VAULT]
    base = {
        "t": t,
        "lang": t.language,
        "csrf": request.app[GUARD].csrf,
        "csrf_field": CSRF_FIELD,
        "unlocked": vault.unlocked,
        "device": str(vault.client.kid.device) if vault.unlocked else "",
        "path": request.path,
        "when": when,
        "day": day,
        "label": lambda group, term: vocab.label(group, str(term), t.language),
        "errors": FormErrors(),
        "error": None,
        "notice": None,
        "key_warnings": len(vault.changes) + len(vault.own),
        "unit_name": _unit_namer(vault),
        "reason_text": lambda code: reason_text(t, str(code)),
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context})
    response.set_status(status)
    return response


def _unit_namer(vault: Vault) -> Callable[[Any], str]:
    """The unit's name from the directory this session verified last (templates)."""
    names = unit_names(vault.client.directory_sync.directory) if vault.unlocked else {}
    return lambda code: names.get(str(code), str(code))


def reason_text(t: Texts, code: str) -> str:
    """Why a message ended, in plain words: the gateway's own endings (consent_ended,
    not_collected) from the text table, else a withdrawal or rejection reason from the
    vocabulary, else the code (still quotable to support)."""
    own = t(f"ui_reason_{code}")
    if own != f"ui_reason_{code}":
        return own
    for group in ("withdrawal_reasons", "rejection_reasons"):
        if code in vocab.terms(group):
            return t("ui_reason_vocab", reason=vocab.label(group, code, t.language))
    return t("ui_reason_code", code=code)


def see_other(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def problem_text(t: Texts, exc: BaseException) -> str:
    """One plain sentence for a failure; codes from the registry stay visible so the
    officer can quote them to support. Exception texts never hold content or keys."""
    code = str(getattr(exc, "code", "") or type(exc).__name__)
    if isinstance(exc, GatewayUnavailable):
        return t("ui_gateway_down")
    if isinstance(exc, Locked):
        return t("ui_locked_now")
    # The one title table of every registered code (keys.protocol.titles), shared with
    # the CLI and the gateway's problem+json; the code stays visible for support.
    what = title(code, t.language) if code in REGISTRY else code
    if code.startswith("consent"):
        return t("ui_refused_consent", code=code, title=what)
    if isinstance(exc, KeysError):
        return t("ui_security_failed", code=code, title=what)
    return t("ui_refused", code=code, title=what)


def form_str(form: Any, name: str, limit: int = 4000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def form_list(form: Any, name: str) -> list[str]:
    return [v for v in form.getall(name, []) if isinstance(v, str) and v]

"""Login (one-time URL), unlock, lock, language, and the live event stream."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from clients.cli.texts import Texts
from clients.ui import live
from clients.ui.guard import refusal, set_session_cookie
from clients.ui.pages import BROKER, GUARD, PUMP, VAULT, FormErrors, render, see_other, texts
from keys.errors import KeysError

routes = web.RouteTableDef()


def _next(value: str | None) -> str:
    # Only local paths: threat of an open redirect steering the officer elsewhere.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/inbox"


@routes.get("/login/{token}")
async def login(request: web.Request) -> web.StreamResponse:
    session = request.app[GUARD].redeem(request.match_info["token"])
    if session is None:
        # A spent or wrong link: the same page as the guard's refusals, without the
        # CSRF token and the navigation that base.html would carry.
        return refusal(request, 403, "login_used", request.app[GUARD].language)
    response = web.Response(status=303, headers={"Location": "/unlock"})
    set_session_cookie(response, session)
    return response


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    raise see_other("/inbox" if request.app[VAULT].unlocked else "/unlock")


@routes.get("/unlock")
async def unlock_page(request: web.Request) -> web.StreamResponse:
    if request.app[VAULT].unlocked:
        raise see_other(_next(request.query.get("next")))
    return render(request, "unlock.html", {"next": _next(request.query.get("next"))})


@routes.post("/unlock")
async def unlock(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    passphrase = form.get("passphrase")
    target = _next(form.get("next") if isinstance(form.get("next"), str) else None)  # type: ignore[arg-type]
    t = texts(request)
    errors = FormErrors()
    vault = request.app[VAULT]
    if not isinstance(passphrase, str) or not passphrase:
        errors.add("passphrase", t("ui_unlock_empty"))
    else:
        try:
            await vault.unlock(passphrase)
        except KeysError as exc:
            key = "ui_unlock_wrong" if "passphrase" in exc.code else "ui_unlock_damaged"
            errors.add("passphrase", t(key, code=exc.code))
        except Exception as exc:
            errors.add("passphrase", t("ui_unlock_failed", code=getattr(exc, "code", "error")))
    if errors:
        return render(request, "unlock.html", {"next": target, "errors": errors}, status=400)
    start_pump(request.app)
    raise see_other(target)


def start_pump(app: web.Application) -> None:
    vault, broker = app[VAULT], app[BROKER]
    task = asyncio.create_task(live.pump(vault, broker, texts_for(app)))
    app[PUMP]["task"] = task


def texts_for(app: web.Application) -> Texts:
    return Texts(app[GUARD].language)


async def lock_app(app: web.Application) -> None:
    task = app[PUMP].pop("task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await app[VAULT].lock()
    app[BROKER].publish(live.LiveEvent("locked", None, texts_for(app)("ui_locked_now")))


@routes.post("/lock")
async def lock(request: web.Request) -> web.StreamResponse:
    await lock_app(request.app)
    raise see_other("/unlock")


@routes.get("/language/{lang}")
async def language(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    if lang in ("sv", "en"):
        request.app[GUARD].language = lang
    raise see_other(_next(request.query.get("next")))


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events; does not count as activity (the idle lock still applies)."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    broker = request.app[BROKER]
    queue = broker.subscribe()
    try:
        await response.write(b": connected\n\n")
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=15)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            await response.write(event.frame())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        broker.unsubscribe(queue)
    return response

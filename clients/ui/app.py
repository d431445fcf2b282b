"""Wiring: templates, static files, the guard, the lock gate, routes and background jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware

from clients.ui import guard as guard_mod
from clients.ui import (
    views_compose,
    views_consent,
    views_directory,
    views_inbox,
    views_sent,
    views_session,
)
from clients.ui.guard import Guard
from clients.ui.live import Broker
from clients.ui.pages import BROKER, GUARD, PUMP, SETTINGS, VAULT
from clients.ui.settings import UiSettings
from clients.ui.vault import Locked, Vault

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
# Uploads go through the browser to this process only; the gateway's own limit applies
# to the sealed envelope.
MAX_UPLOAD = 1 << 30
# Reachable without an unlocked keystore.
_WITHOUT_KEYS = ("/login/", "/static/", "/unlock", "/lock", "/language/", "/events")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _lock_gate(app: web.Application) -> Middleware:
    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path not in ("/events",) and not path.startswith("/static/"):
            app[GUARD].touch()
        if path != "/" and not path.startswith(_WITHOUT_KEYS) and not app[VAULT].unlocked:
            raise web.HTTPSeeOther(f"/unlock?next={path}" if request.method == "GET" else "/unlock")
        lang = request.query.get("lang")
        if lang in ("sv", "en"):
            app[GUARD].language = lang
        try:
            return await handler(request)
        except Locked:
            raise web.HTTPSeeOther("/unlock") from None

    return gate


async def _idle_watch(app: web.Application) -> AsyncIterator[None]:
    """Lock after ``idle_s`` without a request (threat: an unattended computer)."""

    async def watch() -> None:
        settings = app[SETTINGS]
        while True:
            await asyncio.sleep(settings.idle_check_s)
            try:
                if app[VAULT].unlocked and app[GUARD].idle_for() >= settings.idle_s:
                    await views_session.lock_app(app)
            except Exception as exc:  # one failed check must not end the idle lock
                log.warning("idle lock check failed (%s)", type(exc).__name__)

    task = asyncio.create_task(watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await views_session.lock_app(app)


def create_app(settings: UiSettings, guard: Guard | None = None) -> web.Application:
    guard = guard or Guard(language=settings.language)
    app = web.Application(middlewares=[guard_mod.middleware(guard)], client_max_size=MAX_UPLOAD)
    app[SETTINGS] = settings
    app[GUARD] = guard
    app[VAULT] = Vault(settings)
    app[BROKER] = Broker()
    app[PUMP] = {}
    app.middlewares.append(_lock_gate(app))
    app.on_response_prepare.append(guard_mod.add_headers)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        # Autoescape everything: names, ids and the message text come from others.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    app.router.add_static("/static/", HERE / "static")
    for module in (
        views_session,
        views_inbox,
        views_compose,
        views_sent,
        views_consent,
        views_directory,
    ):
        app.router.add_routes(module.routes)
    app.cleanup_ctx.append(_idle_watch)
    return app

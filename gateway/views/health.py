"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import SESSIONMAKER
from gateway.migrations import current_revision, head_revision
from keys.protocol.problems import ServiceUnavailable


async def healthz(_request: web.Request) -> web.Response:
    """The process answers (no dependency checked: a DB outage must not restart us)."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The database is reachable and migrated to the revision this code expects."""
    try:
        async with request.app[SESSIONMAKER]() as session:
            revision = await current_revision(session)
    except Exception:
        raise ServiceUnavailable("database unreachable") from None
    if revision != head_revision():
        raise ServiceUnavailable("database not migrated: run `stafett-gateway migrate`")
    return web.json_response({"status": "ready", "revision": revision})

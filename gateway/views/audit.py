"""Audit endpoints for security admins (what `stafett-keys audit verify` reads)."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.appkeys import IDENTITY, SESSIONMAKER
from gateway.auth import caller_of, require_admin
from gateway.db import audit_store
from gateway.db import audit_trail as audit
from gateway.views.jsonbody import query_int
from keys.protocol.problems import NotFound

MAX_LIMIT = 1000


async def get_entries(request: web.Request) -> web.Response:
    require_admin(caller_of(request))
    after = query_int(request, "after", default=-1, minimum=-1, maximum=2**53 - 1)
    limit = query_int(request, "limit", default=MAX_LIMIT, minimum=1, maximum=MAX_LIMIT)
    async with request.app[SESSIONMAKER]() as session:
        rows = await audit_store.entries_from(session, after + 1, limit)
    return web.json_response({"entries": [audit.row_to_json(r) for r in rows]})


async def get_checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint, signing a fresh one first if the head moved."""
    require_admin(caller_of(request))
    identity = request.app[IDENTITY]
    async with request.app[SESSIONMAKER].begin() as session:
        row = await audit.sign_checkpoint(
            session, identity.kid, identity.signing_key, now=int(time.time())
        )
    if row is None:
        raise NotFound("the audit chain is empty")
    return web.json_response(audit.checkpoint_json(row))

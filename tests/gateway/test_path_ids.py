"""Ids in URL paths: bad input is a 400 with one code on both stores, never a 500.

Every route whose path has a ``{…_id}`` parameter is found from the app's router (a
new route is tested without editing this file), then probed with values no stored row
can have: a NUL byte (asyncpg refuses it in a text parameter: a 500 before the check),
a non-UUID, an over-long string, an upper-case UUID and a UUID with a trailing newline.
"""

from __future__ import annotations

import uuid

import pytest
from aiohttp import web

from gateway.auth import STREAM_CONTENT_TYPE
from tests.support.gateway import RunningGateway, assert_problem

ANNA = "so-nordost/anna/1"
BAD_IDS = [
    "%00",
    f"{uuid.uuid4()}%00",
    "not-a-uuid",
    "a" * 2000,
    str(uuid.uuid4()).upper(),
    f"{uuid.uuid4()}%0A",
    "..%2F..%2Fetc",
]


def id_routes(app: web.Application) -> list[tuple[str, str, str]]:
    """(method, path template, parameter name) for every route with an id in its path."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        formatter = info.get("formatter")
        if route.method == "HEAD" or not formatter:
            continue
        for name in ("message_id", "consent_id"):
            if "{" + name + "}" in formatter:
                found.append((route.method, formatter, name))
    return found


@pytest.mark.asyncio
async def test_every_id_route_refuses_malformed_ids(gateway: RunningGateway) -> None:
    routes = id_routes(gateway.app)
    # The routes the issue counted, plus PUT: none may drop out unnoticed.
    assert len(routes) == 8, routes
    anna = gateway.client(ANNA)
    for method, template, name in routes:
        for bad in BAD_IDS:
            path = template.replace("{" + name + "}", bad)
            if method == "PUT":
                reply = await anna.put(path, b"x" * 100, content_type=STREAM_CONTENT_TYPE)
            elif method == "POST":
                reply = await anna.post(path, {"reason": "subject_withdrew"})
            else:
                reply = await anna.get(path)
            assert reply.status < 500, (method, template, bad[:20], reply.status)
            assert_problem(reply, 400, "field_invalid")


@pytest.mark.asyncio
async def test_a_well_formed_unknown_id_is_still_not_found(gateway: RunningGateway) -> None:
    anna = gateway.client(ANNA)
    unknown = str(uuid.uuid4())
    assert_problem(await anna.get(f"/v1/messages/{unknown}"), 404, "message_not_found")
    assert_problem(await anna.get(f"/v1/consents/{unknown}"), 403, "consent_unknown")

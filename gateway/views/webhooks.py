"""Webhook handlers: parse, call one service function, serialise. No SQL, no crypto."""

from __future__ import annotations

import time

from aiohttp import web

from gateway import webhook_target
from gateway.appkeys import DIRECTORY, IDENTITY, SESSIONMAKER, SETTINGS
from gateway.auth import caller_of
from gateway.caller import require_integration_device
from gateway.services import webhooks
from gateway.views.jsonbody import read_json


def _now() -> int:
    return int(time.time())


async def post_webhook(request: web.Request) -> web.Response:
    # Who first: an officer's device must not get as far as making the gateway resolve
    # a host name of its choosing (the service checks again where it decides).
    require_integration_device(request.app[DIRECTORY].directory, caller_of(request))
    body = await read_json(request, required={"url"})
    allow = request.app[SETTINGS].webhook_allow_loopback_http
    url = webhooks.check_url(body["url"], allow_loopback_http=allow)
    await webhook_target.check_at_registration(url, allow_loopback=allow)
    answer = await webhooks.register(
        request.app[SESSIONMAKER],
        caller_of(request),
        url,
        now=_now(),
        key=request.app[IDENTITY].signing_key,
        directory=request.app[DIRECTORY].directory,
    )
    return web.json_response(answer, status=201)


async def get_webhooks(request: web.Request) -> web.Response:
    listed = await webhooks.list_for(request.app[SESSIONMAKER], caller_of(request))
    return web.json_response({"webhooks": listed})


async def delete_webhook(request: web.Request) -> web.Response:
    await webhooks.delete(
        request.app[SESSIONMAKER],
        caller_of(request),
        request.match_info["webhook_id"],
        now=_now(),
        directory=request.app[DIRECTORY].directory,
    )
    return web.Response(status=204)


async def get_deliveries(request: web.Request) -> web.Response:
    listed = await webhooks.deliveries(
        request.app[SESSIONMAKER],
        caller_of(request),
        request.match_info["webhook_id"],
        request.query.get("state"),
    )
    return web.json_response({"deliveries": listed})

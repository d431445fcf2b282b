"""The push stream's defences: authentication of the upgrade, limits, revocation and
clean shutdown (GET /v1/events), on both stores."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from test_push import ANNA, BERTIL, NO_POLL, QUICK_S, _signed_headers, connect, post
from yarl import URL

from tests.support.gateway import RunningGateway, stop_gateway


@pytest.mark.asyncio
async def test_unauthenticated_or_admin_upgrade_is_refused(gateway: RunningGateway) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as unsigned:
        await connect(gateway, ANNA, sign=False)
    assert unsigned.value.status == 401
    # Signed for a different query: the signature covers ?after, so it fails.
    url = gateway.url.join(URL("/v1/events?after=5", encoded=True))
    headers = _signed_headers(gateway, ANNA, "/v1/events", "after=0")
    with pytest.raises(aiohttp.WSServerHandshakeError) as forged:
        await gateway.http.ws_connect(url, headers=headers)
    assert forged.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as admin:
        await connect(gateway, "admin/root/1")
    assert admin.value.status == 403


@pytest.mark.asyncio
async def test_plain_get_without_upgrade_is_a_problem(gateway: RunningGateway) -> None:
    reply = await gateway.client(ANNA).get("/v1/events?after=0")
    assert reply.status == 400
    assert reply.json()["code"] == "bad_request"
    bad = await gateway.client(ANNA).get("/v1/events?after=-1")
    assert bad.status == 400
    assert bad.json()["code"] == "field_invalid"


@pytest.mark.asyncio
async def test_sockets_per_device_are_limited(start: Any) -> None:
    gw = await start(push_max_sockets_per_device=1, **NO_POLL)
    first = await connect(gw, ANNA)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(gw, ANNA)
        assert refused.value.status == 429
        other = await connect(gw, BERTIL)  # the limit is per device
        await other.close()
    finally:
        await first.close()
    await asyncio.sleep(0.1)  # the server notices the close and frees the slot
    again = await connect(gw, ANNA)
    await again.close()


@pytest.mark.asyncio
async def test_shutdown_closes_sockets_cleanly(start: Any) -> None:
    gw = await start(**NO_POLL)
    ws = await connect(gw, ANNA)
    # A real client is always reading; the close handshake needs it to answer.
    reading = asyncio.create_task(ws.receive(timeout=QUICK_S))
    began = time.monotonic()
    await gw.runner.cleanup()  # the server side only; the client session stays open
    msg = await reading
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    # Closed by on_shutdown, not by the server's shutdown timeout cutting connections.
    assert time.monotonic() - began < QUICK_S
    await stop_gateway(gw)  # idempotent: the fixture calls it again


@pytest.mark.asyncio
async def test_a_revoked_device_is_cut_off_before_the_next_event(start: Any) -> None:
    gw = await start(**NO_POLL)
    ws = await connect(gw, BERTIL)
    await gw.append(
        gw.builder.entry("revoke_device", {"device": "so-nordost/bertil", "reason": "lost"})
    )
    # The next event wakes the stream; it must close instead of sending it.
    await post(gw, BERTIL, "inbox.new", "after-revocation")
    msg = await ws.receive(timeout=QUICK_S)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(gw, BERTIL)
    assert refused.value.status == 403  # device_revoked

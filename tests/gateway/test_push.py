"""The push stream GET /v1/events (WebSocket), on both stores, against the real app."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from yarl import URL

from gateway.appkeys import SESSIONMAKER
from gateway.db.engine import make_sessionmaker, open_engine
from gateway.services.events import emit
from keys.crypto.canonical import NotCanonical
from keys.protocol.httpsig import content_digest, new_nonce, sign_request
from tests.support.gateway import RunningGateway

ANNA, BERTIL, BO = "so-nordost/anna/1", "so-nordost/bertil/1", "sav/bo/1"
# The poll for other instances is set this long so that a test passing within
# QUICK_S proves the in-process wake, not the poll, delivered the event.
NO_POLL = {"events_poll_interval_s": 30.0}
QUICK_S = 3.0


def _signed_headers(gw: RunningGateway, kid: str, path: str, query: str) -> dict[str, str]:
    key = gw.admin_key if kid.startswith("admin/") else gw.devices[kid].signing_key
    return sign_request(
        key,
        kid,
        method="GET",
        path=path,
        query=query,
        content_digest=content_digest(b""),
        created=int(time.time()),
        nonce=new_nonce(),
    )


async def connect(
    gw: RunningGateway, kid: str, after: int | None = None, *, sign: bool = True
) -> aiohttp.ClientWebSocketResponse:
    query = "" if after is None else f"after={after}"
    url = gw.url.join(URL("/v1/events" + (f"?{query}" if query else ""), encoded=True))
    headers = _signed_headers(gw, kid, "/v1/events", query) if sign else {}
    return await gw.http.ws_connect(url, headers=headers, autoping=True)


async def post(gw: RunningGateway, kid: str, kind: str, message_id: str, **data: Any) -> None:
    """Emit through the app's own session maker, as the messages service does."""
    async with gw.app[SESSIONMAKER].begin() as session:
        await emit(
            session,
            device=kid,
            kind=kind,
            message_id=message_id,
            data=dict(data),
            now=int(time.time()),
        )


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=QUICK_S)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    value: dict[str, Any] = json.loads(msg.data)
    return value


async def assert_silent(ws: aiohttp.ClientWebSocketResponse, for_s: float = 0.2) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=for_s)


@pytest.mark.asyncio
async def test_backlog_then_live_event_without_waiting_for_the_poll(start: Any) -> None:
    gw = await start(**NO_POLL)
    await post(gw, ANNA, "inbox.new", "m1", state="accepted")
    await post(gw, ANNA, "outbox.delivered", "m0", state="delivered")
    ws = await connect(gw, ANNA)
    try:
        first, second = await receive(ws), await receive(ws)
        assert [first["kind"], second["kind"]] == ["inbox.new", "outbox.delivered"]
        assert set(first) == {"seq", "kind", "message_id", "created", "data"}
        assert first["message_id"] == "m1"
        assert first["data"] == {"state": "accepted"}
        assert second["seq"] > first["seq"]
        await assert_silent(ws)
        # Live: the 30 s poll cannot be what delivers this within QUICK_S.
        sent_at = time.monotonic()
        await post(gw, ANNA, "inbox.new", "m2")
        live = await receive(ws)
        assert live["message_id"] == "m2"
        assert live["seq"] > second["seq"]
        assert time.monotonic() - sent_at < QUICK_S
    finally:
        await ws.close()


@pytest.mark.asyncio
async def test_resume_after_reconnect_delivers_exactly_the_missed_events(start: Any) -> None:
    gw = await start(**NO_POLL)
    for i in range(3):
        await post(gw, ANNA, "inbox.new", f"a{i}")
    ws = await connect(gw, ANNA, after=0)
    seen = [await receive(ws) for _ in range(3)]
    await ws.close()
    last = seen[-1]["seq"]
    # While disconnected: two for anna, one for bertil (must not appear).
    await post(gw, ANNA, "inbox.new", "b0")
    await post(gw, BERTIL, "inbox.new", "x0")
    await post(gw, ANNA, "outbox.expired", "b1", reason="not_collected")
    ws = await connect(gw, ANNA, after=last)
    try:
        missed = [await receive(ws), await receive(ws)]
        assert [e["message_id"] for e in missed] == ["b0", "b1"]
        assert all(e["seq"] > last for e in missed)
        await assert_silent(ws)
    finally:
        await ws.close()
    # Resuming from the middle gives the tail of the backlog, nothing before it.
    ws = await connect(gw, ANNA, after=seen[0]["seq"])
    try:
        tail = [(await receive(ws))["message_id"] for _ in range(4)]
        assert tail == ["a1", "a2", "b0", "b1"]
        await assert_silent(ws)
    finally:
        await ws.close()


@pytest.mark.asyncio
async def test_a_device_never_sees_another_devices_events(start: Any) -> None:
    gw = await start(**NO_POLL)
    await post(gw, BERTIL, "inbox.new", "for-bertil")  # same unit, other device
    await post(gw, BO, "inbox.new", "for-bo")  # other unit
    anna, bertil = await connect(gw, ANNA), await connect(gw, BERTIL)
    try:
        await assert_silent(anna)
        assert (await receive(bertil))["message_id"] == "for-bertil"
        await post(gw, BO, "outbox.delivered", "bo-live")
        await post(gw, ANNA, "inbox.new", "for-anna")
        assert (await receive(anna))["message_id"] == "for-anna"
        await assert_silent(anna)
        await assert_silent(bertil)
    finally:
        await anna.close()
        await bertil.close()


@pytest.mark.asyncio
async def test_events_committed_by_another_instance_arrive_by_poll(start: Any) -> None:
    gw = await start(events_poll_interval_s=0.2)
    ws = await connect(gw, ANNA)
    # Another instance: its own engine, not attached to this app's notifier.
    engine = open_engine(gw.settings.db_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            await emit(session, device=ANNA, kind="inbox.new", message_id="far", data={}, now=1)
        assert (await receive(ws))["message_id"] == "far"
    finally:
        await engine.dispose()
        await ws.close()


@pytest.mark.asyncio
async def test_emit_refuses_bad_kinds_and_non_canonical_data(gateway: RunningGateway) -> None:
    with pytest.raises(ValueError, match="event kind"):
        await post(gateway, ANNA, "NoDot", "m")
    with pytest.raises(NotCanonical):
        await post(gateway, ANNA, "inbox.new", "m", ratio=0.5)
    # Nothing half-written: the refused emits left no rows behind.
    ws = await connect(gateway, ANNA)
    try:
        await assert_silent(ws)
    finally:
        await ws.close()

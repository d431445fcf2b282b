"""Transport hardening against a real server on loopback, driven with raw sockets.

Every test is bounded in time: a server that keeps a slow client waiting fails the
test by its ``asyncio.wait_for`` instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import pytest
from aiohttp import web

from gateway.auth import STREAM_CONTENT_TYPE, verified_body
from gateway.transport import GuardedSite
from keys.protocol.httpsig import content_digest, new_nonce, sign_request
from tests.support.gateway import RunningGateway

ANNA = "so-nordost/anna/1"
BOUND_S = 5.0  # no test waits longer than this for an answer


async def _drain(request: web.Request) -> web.Response:
    size = 0
    async for chunk in verified_body(request):
        size += len(chunk)
    return web.json_response({"size": size})


def _routes(app: web.Application) -> None:
    app.router.add_put("/v1/test/stream", _drain)


async def _guarded(gw: RunningGateway) -> int:
    """A second site on the gateway's runner, served as `stafett-gateway serve` does."""
    site = GuardedSite(gw.runner, gw.settings.replace(host="127.0.0.1", port=0))
    await site.start()
    return site.port


async def _exchange(port: int, *parts: bytes, pause_s: float = 0.0) -> tuple[bytes, float]:
    """Send ``parts`` (pausing between them) while reading until the server closes."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def read_all() -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received.extend(chunk)

    reading = asyncio.create_task(read_all())
    try:
        for part in parts:
            if reading.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(part)
                await writer.drain()
            if pause_s:
                await asyncio.sleep(pause_s)
        await asyncio.wait_for(reading, BOUND_S)
        return bytes(received), time.monotonic() - started
    finally:
        reading.cancel()
        writer.close()


def _problem(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.mark.asyncio
async def test_slow_request_head_is_cut(start) -> None:
    gw = await start(header_timeout_s=0.5)
    port = await _guarded(gw)
    # Slowloris: a header line every 0.2 s, never the blank line that ends the head.
    lines = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n"] + [b"X-Slow: 1\r\n"] * 40
    raw, took = await asyncio.wait_for(_exchange(port, *lines, pause_s=0.2), BOUND_S * 2)
    status, body = _problem(raw)
    assert (status, body["code"]) == (408, "request_timeout")
    assert took < 3.0
    # A connection that sends nothing at all is closed too.
    raw, took = await _exchange(port)
    assert _problem(raw)[0] == 408
    # A prompt client on the same site is served.
    raw, _ = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")


def _signed_head(gw: RunningGateway, body: bytes) -> bytes:
    headers = sign_request(
        gw.devices[ANNA].signing_key,
        ANNA,
        method="PUT",
        path="/v1/test/stream",
        query="",
        content_digest=content_digest(body),
        created=int(time.time()),
        nonce=new_nonce(),
    )
    head = "PUT /v1/test/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    head += f"Content-Type: {STREAM_CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode()


@pytest.mark.asyncio
async def test_slow_body_is_refused_and_closed(start) -> None:
    gw = await start(configure=_routes, body_idle_timeout_s=0.5, body_min_bytes_per_s=1000)
    port = await _guarded(gw)
    body = b"x" * 4096
    # 16 bytes every 0.2 s: never idle for 0.5 s, but far below 1000 bytes/s.
    parts = [_signed_head(gw, body)] + [body[i : i + 16] for i in range(0, 320, 16)]
    raw, took = await asyncio.wait_for(_exchange(port, *parts, pause_s=0.2), BOUND_S * 2)
    status, problem = _problem(raw)
    assert (status, problem["code"]) == (408, "request_timeout")
    assert took < 3.0
    # A body that stops altogether.
    raw, took = await _exchange(port, _signed_head(gw, body), body[:100])
    assert _problem(raw)[1]["code"] == "request_timeout"
    assert took < 3.0
    # The same upload at full speed is taken.
    raw, _ = await _exchange(port, _signed_head(gw, body) + body)
    assert raw.startswith(b"HTTP/1.1 200")


@pytest.mark.asyncio
async def test_oversized_header_is_431_problem_without_echo(start, caplog) -> None:
    gw = await start(max_header_bytes=1024)
    port = await _guarded(gw)
    marker = "ECHO-ME-" + "z" * 4000
    with caplog.at_level(logging.DEBUG):
        raw, _ = await _exchange(port, f"GET /healthz HTTP/1.1\r\nX-Big: {marker}\r\n\r\n".encode())
    status, problem = _problem(raw)
    assert (status, problem["code"]) == (431, "headers_too_large")
    assert b"application/problem+json" in raw
    assert b"ECHO-ME" not in raw
    assert all("ECHO-ME" not in r.getMessage() and not r.exc_info for r in caplog.records)


@pytest.mark.asyncio
async def test_malformed_request_line_is_one_log_line(start, caplog) -> None:
    gw = await start()
    port = await _guarded(gw)
    with caplog.at_level(logging.DEBUG):
        for junk in (b"GARBAGE\x01 / HTTP/1.1\r\n\r\n", b"GET /\x00secret HTTP/9.9\r\n\r\n"):
            raw, _ = await _exchange(port, junk)
            status, problem = _problem(raw)
            assert (status, problem["code"]) == (400, "bad_request")
            assert b"secret" not in raw
    server_records = [r for r in caplog.records if r.name.startswith(("aiohttp", "gateway"))]
    assert not any(r.exc_info for r in server_records)
    assert not any("secret" in r.getMessage() for r in server_records)
    refused = [r for r in server_records if "malformed request" in r.getMessage()]
    assert len(refused) == 2


@pytest.mark.asyncio
async def test_connection_cap(start) -> None:
    gw = await start(max_connections=2, header_timeout_s=3.0)
    port = await _guarded(gw)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    try:
        await asyncio.sleep(0.1)
        raw, took = await _exchange(port)
        status, problem = _problem(raw)
        assert (status, problem["code"]) == (503, "unavailable")
        assert took < 1.0
    finally:
        for _, writer in held:
            writer.close()
    await asyncio.sleep(0.1)
    raw, _ = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")


@pytest.mark.asyncio
async def test_unauthenticated_requests_are_limited_per_address(start) -> None:
    gw = await start(unauth_rate_limit_per_s=0.001, unauth_rate_limit_burst=3)
    anna = gw.client(ANNA)
    statuses = [(await anna.get("/v1/inbox", sign=False)).status for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    reply = await anna.get("/v1/inbox")  # signed: refused too, before any work
    assert reply.status == 429
    assert reply.json()["code"] == "rate_limited"
    assert (await gw.http.get(gw.url / "healthz")).status == 429


@pytest.mark.asyncio
async def test_authenticated_requests_do_not_take_tokens(start) -> None:
    gw = await start(unauth_rate_limit_per_s=0.001, unauth_rate_limit_burst=2)
    anna = gw.client(ANNA)
    for _ in range(5):
        assert (await anna.get("/v1/inbox")).status == 200
    assert (await anna.get("/v1/inbox", sign=False)).status == 401

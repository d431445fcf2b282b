"""Security properties of the HTTP surface: limits, errors that leak nothing, headers."""

from __future__ import annotations

import hashlib
import logging

import pytest
from aiohttp import web

from gateway.auth import STREAM_CONTENT_TYPE, verified_body
from gateway.migrations import head_revision
from keys.protocol.problems import ERRORS, GatewayError, problem_body
from tests.support.gateway import assert_problem

ANNA = "so-nordost/anna/1"
ENTRIES = "/v1/directory/entries"
SECRET = "hunter2-db-password"


async def _boom(_request: web.Request) -> web.Response:
    raise RuntimeError(f"connection failed: postgresql://stafett:{SECRET}@db/stafett")


async def _stream(request: web.Request) -> web.Response:
    digest, size = hashlib.sha256(), 0
    async for chunk in verified_body(request):
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({"size": size, "sha256": digest.hexdigest()})


def _test_routes(app: web.Application) -> None:
    app.router.add_get("/v1/test/boom", _boom)
    app.router.add_get("/test/boom", _boom)
    app.router.add_put("/v1/test/stream", _stream)


@pytest.mark.asyncio
async def test_500_hides_internals_and_logs_with_request_id(start, caplog) -> None:
    gw = await start(configure=_test_routes)
    with caplog.at_level(logging.ERROR, logger="gateway.http"):
        reply = await gw.client(ANNA).get("/v1/test/boom")
    assert_problem(reply, 500, "internal_error")
    assert SECRET not in reply.body.decode()
    assert "RuntimeError" not in reply.body.decode()
    request_id = reply.headers["X-Request-Id"]
    assert request_id in reply.json()["detail"]
    assert any(request_id in r.getMessage() for r in caplog.records)
    unauth = await gw.http.get(gw.url / "test" / "boom")
    assert unauth.status == 500
    assert SECRET not in await unauth.text()


@pytest.mark.asyncio
async def test_streamed_body_is_digested_at_the_end(start) -> None:
    gw = await start(configure=_test_routes, max_body_bytes=300_000)
    client = gw.client(ANNA)
    data = bytes(range(256)) * 1000  # 256 KB: several chunks
    reply = await client.put("/v1/test/stream", data, content_type=STREAM_CONTENT_TYPE)
    assert reply.status == 200, reply.body
    assert reply.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    altered = data[:-1] + b"\x00"
    reply = await client.put(
        "/v1/test/stream", altered, content_type=STREAM_CONTENT_TYPE, signed_digest_of=data
    )
    assert_problem(reply, 400, "digest_mismatch")
    reply = await client.put("/v1/test/stream", data + data, content_type=STREAM_CONTENT_TYPE)
    assert_problem(reply, 413, "body_too_large")


@pytest.mark.asyncio
async def test_json_body_limit(start) -> None:
    gw = await start(max_json_bytes=1024)
    reply = await gw.admin.post(ENTRIES, {"entries": ["x" * 2000]})
    assert_problem(reply, 413, "body_too_large")


@pytest.mark.asyncio
async def test_header_limit(start) -> None:
    gw = await start(max_header_bytes=2048)
    # Each header is under the parser's per-field limit; together they are over the total.
    padding = {"X-Padding-1": "a" * 1200, "X-Padding-2": "b" * 1200}
    reply = await gw.client(ANNA).get(ENTRIES, headers=padding)
    assert_problem(reply, 431, "headers_too_large")
    assert (await gw.client(ANNA).get(ENTRIES, headers={"X-Padding": "a" * 1000})).status == 200


@pytest.mark.asyncio
async def test_unknown_fields_duplicates_and_wrong_types_are_refused(gateway) -> None:
    admin = gateway.admin
    assert_problem(await admin.post(ENTRIES, {"entries": [], "x": 1}), 400, "unknown_field")
    dup = b'{"entries": [], "entries": []}'
    reply = await admin.request("POST", ENTRIES, data=dup, content_type="application/json")
    assert_problem(reply, 400, "json_invalid")
    reply = await admin.request("POST", ENTRIES, data=b"[1]", content_type="application/json")
    assert_problem(reply, 400, "json_invalid")
    reply = await admin.request("POST", ENTRIES, data=b"{}", content_type="text/plain")
    assert_problem(reply, 415, "unsupported_media_type")


@pytest.mark.asyncio
async def test_rate_limit_per_device(start) -> None:
    gw = await start(rate_limit_per_s=0.001, rate_limit_burst=3)
    anna, bo = gw.client(ANNA), gw.client("sav/bo/1")
    statuses = [(await anna.get(ENTRIES)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert_problem(await anna.get(ENTRIES), 429, "rate_limited")
    assert (await bo.get(ENTRIES)).status == 200  # other devices are not affected


@pytest.mark.asyncio
async def test_security_headers_everywhere(gateway) -> None:
    for reply in (
        await gateway.client(ANNA).get(ENTRIES),
        await gateway.client(ANNA).get(ENTRIES, sign=False),
    ):
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
        assert reply.headers["Server"] == "stafett"
        assert "X-Request-Id" in reply.headers


@pytest.mark.asyncio
async def test_health_and_readiness(gateway) -> None:
    assert (await gateway.http.get(gateway.url / "healthz")).status == 200
    ready = await gateway.http.get(gateway.url / "readyz")
    assert ready.status == 200
    assert (await ready.json())["revision"] == head_revision()


@pytest.mark.asyncio
async def test_not_ready_before_migration(start, store_url, tmp_path) -> None:
    from gateway.app import create_app
    from gateway.identity import init_identity
    from keys.crypto.keypairs import SigningKey
    from tests.support.gateway import make_settings

    settings = make_settings(tmp_path / "fresh", store_url)
    identity = init_identity(settings, {"admin/root/1": SigningKey.generate().verify_key})
    app = create_app(settings, identity)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            port = runner.addresses[0][1]
            async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                assert resp.status == 503
                assert (await resp.json())["code"] == "unavailable"
    finally:
        await runner.cleanup()


def test_problem_registry_round_trip() -> None:
    for code, cls in ERRORS.items():
        body = problem_body(code, "d")
        assert body["code"] == code
        assert body["type"] == f"https://stafett.example/problems/{code}"
        assert 400 <= body["status"] <= 599
        assert isinstance(body["title"], str)
        assert body["title"]
        if issubclass(cls, GatewayError):
            assert body["status"] == cls.status
    assert "signature_invalid" in ERRORS
    assert "digest_mismatch" in ERRORS
    assert "consent_withdrawn" in ERRORS  # policy codes are in the one registry too


def test_error_registry_does_not_import_aiohttp() -> None:
    import subprocess
    import sys

    code = (
        "import sys, keys.protocol.problems; "
        "print('aiohttp' in sys.modules, 'sqlalchemy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"

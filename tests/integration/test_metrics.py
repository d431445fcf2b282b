"""/metrics, request ids and the access log, and a database outage in the log."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.identity import init_identity
from gateway.observability.logs import setup_logging
from gateway.settings import Settings
from keys.crypto.keypairs import SigningKey
from tests.support.gateway import PASSPHRASE, RunningGateway
from tests.support.sdk import ANNA, BO, client, message_args, record_consent


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    setup_logging("text", "DEBUG", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


async def _scrape(gw: RunningGateway, **headers: str) -> tuple[int, str]:
    async with gw.http.get(gw.url / "metrics", headers=headers) as resp:
        return resp.status, await resp.text()


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.mark.asyncio
async def test_metrics_follow_a_handover(start, tmp_path: Path) -> None:
    gw = await start(expire_interval_s=1)
    async with client(gw, ANNA) as anna, client(gw, BO) as bo:
        consent_id = await record_consent(anna)
        sent = await anna.send(**message_args(consent_id))
        status, text = await _scrape(gw)
        assert status == 200
        assert _value(text, "stafett_messages_pending") == 1
        await bo.fetch(sent.message_id, tmp_path / "out.bin")
        await bo.ack(sent.message_id)
        await bo.inbox()
        async with gw.http.get(gw.url / "v1" / "inbox") as resp:  # unsigned: refused
            assert resp.status == 401
        await asyncio.sleep(1.5)  # one run of the expiry job
    status, text = await _scrape(gw)
    assert _value(text, "stafett_messages_pending") == 0
    assert _value(text, "stafett_handover_latency_seconds_count") == 1
    route = "/v1/messages/{message_id}/receipt"
    assert _value(text, "stafett_http_requests_total", route=route, status="200") == 1
    assert _value(text, "stafett_http_requests_total", route="/v1/inbox", status="401") == 1
    refused = _value(
        text, "stafett_http_requests_total", route="/v1/inbox", code="signature_missing"
    )
    assert refused == 1
    assert _value(text, "stafett_job_runs_total", job="expire_messages") >= 1
    assert _value(text, "stafett_push_connections") == 0
    assert sent.message_id not in text  # route templates only, never ids


@pytest.mark.asyncio
async def test_scrapes_through_a_proxy_are_refused(gateway) -> None:
    assert (await _scrape(gateway))[0] == 200
    # Through a proxy on the same host every client would look like loopback.
    status, text = await _scrape(gateway, **{"X-Forwarded-For": "203.0.113.9"})
    assert status == 403
    assert "stafett_" not in text


@pytest.mark.asyncio
async def test_scrape_token(start) -> None:
    gw = await start(metrics_token="s3cret-token", metrics_allow="127.0.0.0/8")
    assert (await _scrape(gw))[0] == 403
    assert (await _scrape(gw, Authorization="Bearer wrong"))[0] == 403
    assert (await _scrape(gw, Authorization="Bearer s3cret-token"))[0] == 200


@pytest.mark.asyncio
async def test_scrape_allow_list(start) -> None:
    gw = await start(metrics_allow="192.0.2.0/24")
    assert (await _scrape(gw))[0] == 403


@pytest.mark.asyncio
async def test_request_id_and_access_log(gateway, captured: io.StringIO) -> None:
    async with gateway.http.get(
        gateway.url / "v1" / "messages" / ("0" * 32), headers={"X-Request-Id": "abc-123-def"}
    ) as resp:
        assert resp.headers["X-Request-Id"] == "abc-123-def"
    bad = "evil\u2028id with spaces and a very long tail " * 3
    async with gateway.http.get(gateway.url / "healthz", headers={"X-Request-Id": bad}) as resp:
        fresh = resp.headers["X-Request-Id"]
    assert fresh != bad
    assert len(fresh) == 32
    text = captured.getvalue()
    access = [line for line in text.splitlines() if " gateway.access " in line]
    assert any(
        "[abc-123-def] GET /v1/messages/{message_id} 401" in line and "signature_missing" in line
        for line in access
    )
    assert any(f"[{fresh}] GET /healthz 200" in line for line in access)
    assert "0" * 32 not in "\n".join(access)


@pytest.mark.asyncio
async def test_database_outage_is_logged_once_then_rate_limited(
    tmp_path: Path, captured: io.StringIO
) -> None:
    # A database that cannot be opened: its directory does not exist.
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'gateway.sqlite3'}",
        gateway_key_passphrase=PASSPHRASE,
        insecure_fast_kdf=True,
        events_poll_interval_s=0.05,  # the poll fails 20 times a second
        expire_interval_s=1,
        nonce_purge_interval_s=0,
        audit_checkpoint_interval_s=0,
    )
    identity = init_identity(settings, {"admin/root/1": SigningKey.generate().verify_key})
    runner = web.AppRunner(create_app(settings, identity))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(20):
                async with http.get(f"http://127.0.0.1:{site.port}/readyz") as resp:
                    assert resp.status == 503
                await asyncio.sleep(0.1)
    finally:
        await runner.cleanup()
    text = captured.getvalue()
    assert "Traceback" not in text
    outage = [line for line in text.splitlines() if "database unavailable" in line]
    assert 1 <= len(outage) <= 2, outage
    # The job's own failure line is one per run (every second here), not per poll.
    failures = [line for line in text.splitlines() if "job expire_messages failed" in line]
    assert len(failures) <= 3

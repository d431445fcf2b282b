"""Webhooks end to end: a unit's events, signed (Standard Webhooks), retried within the
bound, visible when failed, never another unit's, once with two gateway instances; the
example receiver in docs/integration.md refuses tampered and replayed notifications."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from gateway.appkeys import IDENTITY, SESSIONMAKER
from gateway.jobs.retention import DAY_S, apply_retention
from gateway.jobs.webhooks import deliver_webhooks
from gateway.settings import Settings, SettingsError
from keys.protocol.problems import FieldInvalid, IntegrationDeviceRequired, NotFound
from tests.support.factories import device, enrol_pair
from tests.support.gateway import RunningGateway
from tests.support.sdk import ANNA, BO, client, message_args, record_consent, sql

pytestmark = pytest.mark.asyncio
DOC = Path(__file__).resolve().parents[2] / "docs" / "integration.md"
SETTINGS = {"webhook_allow_loopback_http": True, "webhook_interval_s": 0}


def _receiver_code() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- receiver:start -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/integration.md lost its receiver example"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)  # noqa: S102  # our own doc
    return namespace


RECEIVER = _receiver_code()


@dataclass
class Endpoint:
    """A webhook receiver on 127.0.0.1: records what arrives, answers ``status``."""

    url: str = ""
    status: int = 204
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest_asyncio.fixture
async def endpoints() -> AsyncIterator[Callable[[], Any]]:
    runners: list[web.AppRunner] = []

    async def make() -> Endpoint:
        endpoint = Endpoint()

        async def handle(request: web.Request) -> web.Response:
            endpoint.got.append(
                ({k.lower(): v for k, v in request.headers.items()}, await request.read())
            )
            return web.Response(status=endpoint.status)

        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        endpoint.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        return endpoint

    yield make
    for runner in runners:
        await runner.cleanup()


async def _bridge(gw: RunningGateway, unit: str = "sav") -> str:
    """Enrol the unit's integration device (role ``integration``): the one device of a
    unit that may register and delete its webhooks. Returns its kid."""
    kid = f"{unit}/bridge/1"
    if kid not in gw.devices:
        pair = device(kid)
        await gw.append(
            gw.builder.entry("enrol_device", {**enrol_pair(pair), "role": "integration"})
        )
        gw.devices[kid] = pair
    return kid


async def _register(gw: RunningGateway, kid: str, url: str) -> dict[str, Any]:
    async with client(gw, kid) as sdk:
        answer = await sdk.transport.request("POST", "/v1/webhooks", json_body={"url": url})
    assert isinstance(answer, dict)
    return answer


async def _send_to_sav(gw: RunningGateway) -> str:
    async with client(gw, ANNA) as anna:
        consent_id = await record_consent(anna)
        return (await anna.send(**message_args(consent_id))).message_id


async def _deliver(gw: RunningGateway, now: int, *, allow_loopback: bool = True) -> int:
    return await deliver_webhooks(
        gw.app[SESSIONMAKER],
        now=now,
        key=gw.app[IDENTITY].signing_key,
        allow_loopback=allow_loopback,
    )


def _payloads(endpoint: Endpoint) -> list[dict[str, Any]]:
    return [json.loads(body) for _, body in endpoint.got]


async def test_a_unit_gets_its_own_events_signed_and_nothing_personal(
    start: Any, endpoints: Any
) -> None:
    gw = await start(**SETTINGS)
    sav, nordost = await endpoints(), await endpoints()
    sav_hook = await _register(gw, await _bridge(gw, "sav"), sav.url)
    await _register(gw, await _bridge(gw, "so-nordost"), nordost.url)
    message_id = await _send_to_sav(gw)
    now = int(time.time())
    await _deliver(gw, now)

    (headers, body) = sav.got[0]
    seen: set[str] = set()
    note = RECEIVER["verify_webhook"](sav_hook["secret"], headers, body, seen, now=now)
    assert note["type"] == "inbox.new"
    assert note["data"]["message_id"] == message_id
    assert note["data"]["unit"] == "sav"
    assert [p["type"] for p in _payloads(sav)] == ["inbox.new"]  # one, not one per device
    for payload in _payloads(sav) + _payloads(nordost):
        text = str(payload)
        assert "subject" not in text
        assert "anna" not in text  # the sender's kid names an officer
    assert all(p["data"]["unit"] == "so-nordost" for p in _payloads(nordost))
    # The secret is not at rest: the row holds a salt it is derived from.
    (stored,) = await sql(gw, "SELECT secret FROM webhooks WHERE id = :i", i=sav_hook["webhook_id"])
    assert stored[0].startswith("derived:")
    assert sav_hook["secret"].removeprefix("whsec_") not in stored[0]
    assert "inbox.new" not in [p["type"] for p in _payloads(nordost)]

    # The example receiver refuses a tampered body, a replay and a stale timestamp.
    refused = RECEIVER["WebhookRefused"]
    with pytest.raises(refused):
        RECEIVER["verify_webhook"](sav_hook["secret"], headers, body + b" ", set(), now=now)
    with pytest.raises(refused):
        RECEIVER["verify_webhook"](sav_hook["secret"], headers, body, seen, now=now)
    with pytest.raises(refused):
        RECEIVER["verify_webhook"](sav_hook["secret"], headers, body, set(), now=now + 301)
    with pytest.raises(refused):
        RECEIVER["verify_webhook"]("whsec_" + "A" * 32, headers, body, set(), now=now)


async def test_retries_stop_after_four_tries_and_the_failure_is_visible(
    start: Any, endpoints: Any
) -> None:
    gw = await start(**SETTINGS)
    sav = await endpoints()
    sav.status = 503
    hook = await _register(gw, await _bridge(gw), sav.url)
    await _send_to_sav(gw)
    t = int(time.time())
    tries = []
    for offset in (0, 30, 60, 200, 240, 700, 720, 5000, 10000):
        await _deliver(gw, t + offset)
        tries.append(len(sav.got))
    assert tries == [1, 1, 2, 2, 3, 3, 4, 4, 4]  # +0, +1, +4, +12 minutes; then no more
    async with client(gw, BO) as bo:
        failed = await bo.transport.request(
            "GET", f"/v1/webhooks/{hook['webhook_id']}/deliveries", query={"state": "failed"}
        )
        listed = await bo.transport.request("GET", "/v1/webhooks")
    assert [d["attempts"] for d in failed["deliveries"]] == [4]
    assert failed["deliveries"][0]["last_status"] == 503
    assert listed["webhooks"][0]["failed_deliveries"] == 1
    assert "secret" not in listed["webhooks"][0]
    ids = {h["webhook-id"] for h, _ in sav.got}
    assert len(ids) == 1  # every try of one notification carries the same id


async def test_two_instances_deliver_each_event_once(start: Any, endpoints: Any) -> None:
    first = await start(**SETTINGS)
    second = await start(**SETTINGS, seed=False, admin_key=first.admin_key)
    sav = await endpoints()
    await _register(first, await _bridge(first), sav.url)
    for _ in range(3):
        await _send_to_sav(first)
    now = int(time.time())
    await asyncio.gather(*(_deliver(gw, now) for gw in (first, second, first, second)))
    ids = [h["webhook-id"] for h, _ in sav.got]
    assert len(ids) == 3
    assert len(set(ids)) == 3


async def test_one_unit_cannot_see_or_remove_another_units_webhook(
    start: Any, endpoints: Any
) -> None:
    gw = await start(**SETTINGS)
    hook = await _register(gw, await _bridge(gw), (await endpoints()).url)
    # Another unit's officer and its integration device alike: unknown, not disclosed.
    async with client(gw, ANNA) as anna, client(gw, await _bridge(gw, "so-nordost")) as nordost:
        assert (await anna.transport.request("GET", "/v1/webhooks"))["webhooks"] == []
        for sdk, method, path in (
            (nordost, "DELETE", f"/v1/webhooks/{hook['webhook_id']}"),
            (anna, "GET", f"/v1/webhooks/{hook['webhook_id']}/deliveries"),
            (nordost, "GET", f"/v1/webhooks/{hook['webhook_id']}/deliveries"),
        ):
            with pytest.raises(NotFound):
                await sdk.transport.request(method, path)
    async with client(gw, await _bridge(gw)) as bridge, client(gw, BO) as bo:
        await bridge.transport.request("DELETE", f"/v1/webhooks/{hook['webhook_id']}")
        assert (await bo.transport.request("GET", "/v1/webhooks"))["webhooks"] == []


@pytest.mark.parametrize(
    "url", ["http://example.org/hook", "ftp://example.org/", "https://", "javascript:alert(1)"]
)
async def test_only_https_endpoints_are_registered(start: Any, url: str) -> None:
    gw = await start(**SETTINGS)
    async with client(gw, await _bridge(gw)) as bo:
        with pytest.raises(FieldInvalid):
            await bo.transport.request("POST", "/v1/webhooks", json_body={"url": url})


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.5/hook",  # private
        "https://169.254.169.254/latest/meta-data",  # link-local: a cloud metadata service
        "https://192.168.1.1/hook",
        "https://224.0.0.1/hook",  # multicast
        "https://0.0.0.0/hook",
        "https://localhost/hook",  # a name that resolves to loopback
        "https://100.64.0.1/hook",  # shared address space (CGNAT)
    ],
)
async def test_internal_addresses_are_refused_at_registration(start: Any, url: str) -> None:
    gw = await start(webhook_interval_s=0)  # loopback not allowed: production settings
    async with client(gw, await _bridge(gw)) as bo:
        with pytest.raises(FieldInvalid):
            await bo.transport.request("POST", "/v1/webhooks", json_body={"url": url})
        assert (await bo.transport.request("GET", "/v1/webhooks"))["webhooks"] == []


async def test_private_addresses_are_refused_even_when_loopback_is_allowed(start: Any) -> None:
    gw = await start(**SETTINGS)
    async with client(gw, await _bridge(gw)) as bo:
        with pytest.raises(FieldInvalid):
            await bo.transport.request(
                "POST", "/v1/webhooks", json_body={"url": "https://10.1.2.3/hook"}
            )


async def test_the_address_is_checked_again_at_delivery(start: Any, endpoints: Any) -> None:
    # Registered while loopback was allowed; delivered by an instance that does not
    # allow it (as a name re-bound to 127.0.0.1 after registration would be): refused
    # before any connection, and the failure is recorded without the address.
    gw = await start(**SETTINGS)
    sav = await endpoints()
    hook = await _register(gw, await _bridge(gw), sav.url)
    await _send_to_sav(gw)
    await _deliver(gw, int(time.time()), allow_loopback=False)
    assert sav.got == []
    async with client(gw, BO) as bo:
        listed = await bo.transport.request("GET", f"/v1/webhooks/{hook['webhook_id']}/deliveries")
    (delivery,) = listed["deliveries"]
    assert delivery["last_error"] == "address_refused"
    assert delivery["attempts"] == 1


async def test_only_the_units_integration_device_registers_or_deletes_webhooks(
    start: Any, endpoints: Any
) -> None:
    # An officer's computer (role officer) may look, not point the unit's notifications
    # somewhere or remove the case system's endpoint; the refusal changes nothing.
    gw = await start(**SETTINGS)
    sav = await endpoints()
    async with client(gw, BO) as bo:
        with pytest.raises(IntegrationDeviceRequired):
            await bo.transport.request("POST", "/v1/webhooks", json_body={"url": sav.url})
        assert (await bo.transport.request("GET", "/v1/webhooks"))["webhooks"] == []
    hook = await _register(gw, await _bridge(gw), sav.url)
    async with client(gw, BO) as bo:
        with pytest.raises(IntegrationDeviceRequired):
            await bo.transport.request("DELETE", f"/v1/webhooks/{hook['webhook_id']}")
        (listed,) = (await bo.transport.request("GET", "/v1/webhooks"))["webhooks"]
    assert listed["webhook_id"] == hook["webhook_id"]
    assert listed["created_by"] == "sav/bridge/1"
    # A security admin is not a unit device either.
    reply = await gw.admin.post("/v1/webhooks", {"url": sav.url})
    assert reply.status == 403
    assert reply.json()["code"] == "device_required"


async def _states(gw: RunningGateway, hook: dict[str, Any]) -> list[str]:
    async with client(gw, BO) as bo:
        listed = await bo.transport.request("GET", f"/v1/webhooks/{hook['webhook_id']}/deliveries")
    return sorted(d["state"] for d in listed["deliveries"])


async def test_retention_purges_settled_deliveries_and_keeps_pending_ones(
    start: Any, endpoints: Any
) -> None:
    gw = await start(**SETTINGS)
    sav = await endpoints()
    hook = await _register(gw, await _bridge(gw), sav.url)
    t = int(time.time())
    await _send_to_sav(gw)
    await _deliver(gw, t)  # delivered at t
    sav.status = 503
    await _send_to_sav(gw)
    for offset in (10, 70, 250, 730):
        await _deliver(gw, t + offset)  # four tries: failed at t + 730
    await _send_to_sav(gw)
    await _deliver(gw, t + 800)  # one try: pending, next at t + 860
    assert await _states(gw, hook) == ["delivered", "failed", "pending"]

    async def retention(at: int) -> int:
        return await apply_retention(
            gw.app[SESSIONMAKER],
            now=at,
            retention_days=30,
            webhook_retention_days=gw.settings.webhook_retention_days,
        )

    period = gw.settings.webhook_retention_days * DAY_S
    await retention(t + period - 1)  # within the period: nothing goes
    assert await _states(gw, hook) == ["delivered", "failed", "pending"]
    await retention(t + period + 100)
    assert await _states(gw, hook) == ["failed", "pending"]
    await retention(t + period + 730)
    assert await _states(gw, hook) == ["pending"]
    async with client(gw, BO) as bo:
        (listed,) = (await bo.transport.request("GET", "/v1/webhooks"))["webhooks"]
    assert listed["failed_deliveries"] == 0
    # Accepted work is never purged: the pending delivery is still tried and delivered.
    await retention(t + 100 * period)
    sav.status = 204
    await _deliver(gw, t + 100 * period)
    assert await _states(gw, hook) == ["delivered"]
    assert await retention(t + 100 * period) == 0  # settled just now: kept for the period


async def test_the_delivery_retention_covers_the_longest_message_lifetime() -> None:
    # A settled delivery row is what stops a later event about the same message from
    # being notified twice; purging it before the message can end would allow that.
    with pytest.raises(SettingsError):
        Settings(webhook_retention_days=29, max_ttl_s=30 * DAY_S)
    assert Settings(webhook_retention_days=30, max_ttl_s=30 * DAY_S).webhook_retention_days == 30

"""Every authentication refusal the SDK can provoke arrives as its registry class."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from clients.errors import UnexpectedResponse
from clients.sdk import StafettClient
from clients.sdk.transport import raise_for_problem
from keys.crypto.keypairs import DeviceKeyPair, KeyId
from keys.errors import SignatureInvalid
from keys.protocol.problems import (
    AdminRequired,
    DeviceRevoked,
    KeyRetired,
    Replayed,
    SignatureExpired,
    SignatureFuture,
)
from tests.support.gateway import RunningGateway
from tests.support.sdk import ANNA, BERTIL, admin, client, device_keystore


@pytest.mark.asyncio
async def test_revoked_device_is_refused(gateway: RunningGateway) -> None:
    entry = gateway.builder.entry(
        "revoke_device", {"device": "so-nordost/bertil", "reason": "lost"}
    )
    async with admin(gateway) as sdk_admin:
        await sdk_admin.post_directory_entries([entry.to_json()])
    async with client(gateway, BERTIL) as sdk:
        with pytest.raises(DeviceRevoked):
            await sdk.sync_directory()


@pytest.mark.asyncio
async def test_unknown_device_is_refused(gateway: RunningGateway) -> None:
    # Answered like a bad signature: an unknown kid is not told apart from an enrolled one.
    ghost = DeviceKeyPair.generate(KeyId.parse("so-nordost/ghost/1"))
    async with client(gateway, "", keystore=device_keystore(gateway, "", ghost)) as sdk:
        with pytest.raises(SignatureInvalid):
            await sdk.sync_directory()


@pytest.mark.asyncio
async def test_a_key_that_is_not_the_directorys_is_refused(gateway: RunningGateway) -> None:
    impostor = DeviceKeyPair.generate(KeyId.parse(ANNA))  # anna's kid, someone else's key
    async with client(gateway, "", keystore=device_keystore(gateway, "", impostor)) as sdk:
        with pytest.raises(SignatureInvalid):
            await sdk.sync_directory()


@pytest.mark.asyncio
async def test_a_retired_key_version_no_longer_signs(gateway: RunningGateway) -> None:
    new = DeviceKeyPair.generate(KeyId.parse("so-nordost/anna/2"))
    entry = gateway.builder.rotate(new, min_encryption_version=1)
    async with admin(gateway) as sdk_admin:
        await sdk_admin.post_directory_entries([entry.to_json()])
    async with client(gateway, ANNA) as sdk:  # still only holds version 1
        with pytest.raises(KeyRetired):
            await sdk.sync_directory()
    rotated = device_keystore(gateway, ANNA)
    rotated.add_version(new)
    async with client(gateway, ANNA, keystore=rotated) as sdk:
        assert (await sdk.sync_directory()).directory.size == 7


@pytest.mark.asyncio
async def test_replayed_request_is_refused(gateway: RunningGateway) -> None:
    async with client(gateway, ANNA) as sdk:
        transport = sdk.transport
        url = transport.url("/v1/directory/checkpoint")
        captured = transport.sign("GET", url)
        first = await transport.send("GET", url, headers=captured)
        assert first.status == 200
        again = await transport.send("GET", url, headers=captured)  # identical bytes
        with pytest.raises(Replayed):
            raise_for_problem(again.status, again.headers["Content-Type"].split(";")[0], again.body)


@pytest.mark.asyncio
async def test_stale_and_future_clocks_are_refused(gateway: RunningGateway) -> None:
    async with client(gateway, ANNA, clock=lambda: time.time() - 3600) as sdk:
        with pytest.raises(SignatureExpired):
            await sdk.sync_directory()
    async with client(gateway, ANNA, clock=lambda: time.time() + 3600) as sdk:
        with pytest.raises(SignatureFuture):
            await sdk.sync_directory()


@pytest.mark.asyncio
async def test_admin_endpoints_refuse_a_device(gateway: RunningGateway) -> None:
    async with client(gateway, ANNA) as sdk:
        with pytest.raises(AdminRequired):
            await sdk.transport.request("GET", "/v1/audit/entries")


@pytest_asyncio.fixture
async def html_proxy() -> AsyncIterator[str]:
    """Something in front of the gateway answering an HTML error page (a broken proxy)."""

    async def bad_gateway(_request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bad_gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.asyncio
async def test_a_non_problem_error_is_an_unexpected_response(
    gateway: RunningGateway, html_proxy: str
) -> None:
    async with StafettClient(html_proxy, device_keystore(gateway, ANNA)) as sdk:
        with pytest.raises(UnexpectedResponse) as info:
            await sdk.sync_directory()
    assert info.value.status == 502

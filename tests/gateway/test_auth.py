"""Every way a /v1 request can fail authentication, each with its own code — on both stores."""

from __future__ import annotations

import time

import pytest

from gateway.appkeys import SESSIONMAKER
from gateway.db import nonce_store
from keys.crypto.keypairs import DeviceKeyPair, KeyId, SigningKey
from keys.protocol.httpsig import content_digest, new_nonce, sign_request
from tests.support.gateway import assert_problem

ANNA = "so-nordost/anna/1"
ENTRIES = "/v1/directory/entries"


@pytest.mark.asyncio
async def test_signed_request_is_accepted(gateway) -> None:
    reply = await gateway.client(ANNA).get(ENTRIES)
    assert reply.status == 200
    assert reply.json()["size"] == 6


@pytest.mark.asyncio
async def test_missing_signature(gateway) -> None:
    assert_problem(await gateway.client(ANNA).get(ENTRIES, sign=False), 401, "signature_missing")


@pytest.mark.asyncio
async def test_malformed_signature(gateway) -> None:
    reply = await gateway.client(ANNA).get(
        ENTRIES, headers={"Signature-Input": "sig1=(", "Signature": "sig1=:AAAA:"}
    )
    assert_problem(reply, 401, "signature_malformed")


@pytest.mark.asyncio
async def test_signature_by_another_key(gateway) -> None:
    forger = gateway.client(ANNA, SigningKey.generate())
    assert_problem(await forger.get(ENTRIES), 401, "signature_invalid")


@pytest.mark.asyncio
async def test_signature_over_another_path(gateway) -> None:
    # A valid signature for one path must not authorise another: the path is covered.
    client = gateway.client(ANNA)
    headers = sign_request(
        client.key,
        ANNA,
        method="GET",
        path="/v1/directory/checkpoint",
        query="",
        content_digest=content_digest(b""),
        created=int(time.time()),
        nonce=new_nonce(),
    )
    assert_problem(await client.get(ENTRIES, headers=headers), 401, "signature_invalid")


@pytest.mark.asyncio
async def test_stale_and_future_timestamps(gateway) -> None:
    client, now = gateway.client(ANNA), int(time.time())
    assert_problem(await client.get(ENTRIES, created=now - 301), 401, "signature_expired")
    assert_problem(await client.get(ENTRIES, created=now + 301), 401, "signature_future")
    assert (await client.get(ENTRIES, created=now - 250)).status == 200


@pytest.mark.asyncio
async def test_replayed_nonce(gateway) -> None:
    client, now = gateway.client(ANNA), int(time.time())
    nonce = "replay-nonce-0123456789"
    assert (await client.get(ENTRIES, created=now, nonce=nonce)).status == 200
    assert_problem(await client.get(ENTRIES, created=now, nonce=nonce), 401, "replayed")
    # The same nonce from another device is that device's own business.
    assert (await gateway.client("sav/bo/1").get(ENTRIES, created=now, nonce=nonce)).status == 200


@pytest.mark.asyncio
async def test_kid_probes_get_one_answer(gateway, caplog) -> None:
    """An unauthenticated caller cannot tell an enrolled kid from an unknown one: an
    unknown device, an unknown version of an enrolled device, an unknown admin and an
    enrolled kid with a wrong key all get the same problem (status,
    code, title, body shape); the distinction is only in the server log."""
    probes = [
        ("so-nordost/nobody/1", "unknown"),  # no such device
        ("so-nordost/anna/7", "unknown"),  # enrolled device, no such version
        ("admin/mallory/1", "unknown"),  # no such admin
        (ANNA, None),  # enrolled, current version, wrong key
    ]
    answers = []
    with caplog.at_level("INFO", logger="gateway.auth"):
        for kid, logged in probes:
            caplog.clear()
            reply = await gateway.client(kid, SigningKey.generate()).get(ENTRIES)
            assert_problem(reply, 401, "signature_invalid")
            body = reply.json()
            answers.append((reply.status, body["type"], body["title"], sorted(body)))
            messages = " ".join(r.getMessage() for r in caplog.records)
            if logged is None:
                assert "not in the directory" not in messages
            else:
                assert "not in the directory" in messages
    assert len(set(map(repr, answers))) == 1


@pytest.mark.asyncio
async def test_revoked_device(gateway) -> None:
    bertil = gateway.client("so-nordost/bertil/1")
    assert (await bertil.get(ENTRIES)).status == 200
    await gateway.append(
        gateway.builder.entry("revoke_device", {"device": "so-nordost/bertil", "reason": "lost"})
    )
    assert_problem(await bertil.get(ENTRIES), 403, "device_revoked")
    # A forged request naming the revoked kid is only a bad signature.
    forged = gateway.client("so-nordost/bertil/1", SigningKey.generate())
    assert_problem(await forged.get(ENTRIES), 401, "signature_invalid")


@pytest.mark.asyncio
async def test_retired_key_after_rotation(gateway) -> None:
    new = DeviceKeyPair.generate(KeyId.parse("so-nordost/anna/2"))
    await gateway.append(gateway.builder.rotate(new, min_encryption_version=1))
    assert_problem(await gateway.client(ANNA).get(ENTRIES), 401, "key_retired")
    assert (await gateway.client(new.kid, new.signing_key).get(ENTRIES)).status == 200


@pytest.mark.asyncio
async def test_digest_mismatch(gateway) -> None:
    reply = await gateway.admin.post(ENTRIES, {"entries": []}, signed_digest_of=b'{"entries": [1]}')
    assert_problem(reply, 400, "digest_mismatch")


@pytest.mark.asyncio
async def test_admin_only_endpoints_refuse_devices(gateway) -> None:
    anna = gateway.client(ANNA)
    assert_problem(await anna.post(ENTRIES, {"entries": []}), 403, "admin_required")
    assert_problem(await anna.get("/v1/audit/entries"), 403, "admin_required")
    assert_problem(await anna.get("/v1/audit/checkpoint"), 403, "admin_required")


@pytest.mark.asyncio
async def test_unknown_v1_route_needs_auth_first(gateway) -> None:
    # No route enumeration without a signature.
    assert_problem(await gateway.client(ANNA).get("/v1/nope", sign=False), 401, "signature_missing")
    assert_problem(await gateway.client(ANNA).get("/v1/nope"), 404, "not_found")


@pytest.mark.asyncio
async def test_nonce_purge_forgets_only_old_nonces(gateway) -> None:
    async with gateway.app[SESSIONMAKER].begin() as session:
        assert await nonce_store.record_nonce(session, ANNA, "n-old", 100)
        assert await nonce_store.record_nonce(session, ANNA, "n-new", 1000)
        assert not await nonce_store.record_nonce(session, ANNA, "n-new", 1000)
    async with gateway.app[SESSIONMAKER].begin() as session:
        assert await nonce_store.purge_nonces(session, 500) >= 1
    async with gateway.app[SESSIONMAKER].begin() as session:
        assert await nonce_store.record_nonce(session, ANNA, "n-old", 100)
        assert not await nonce_store.record_nonce(session, ANNA, "n-new", 1000)

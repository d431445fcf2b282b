"""Directory endpoints: admin appends (all-or-nothing), incremental reads, checkpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from keys.crypto.keypairs import DeviceKeyPair, KeyId, SigningKey
from keys.protocol.checkpoint import Checkpoint
from keys.protocol.directory import Directory, DirectoryEntry, make_entry
from tests.support.gateway import assert_problem

ENTRIES = "/v1/directory/entries"


def _pair(kid: str) -> DeviceKeyPair:
    return DeviceKeyPair.generate(KeyId.parse(kid))


@pytest.mark.asyncio
async def test_admin_appends_entries_and_devices_read_them_incrementally(gateway) -> None:
    carl = _pair("sav/carl/1")
    dora = _pair("sav/dora/1")
    entries = [gateway.builder.enrol(carl).to_json(), gateway.builder.enrol(dora).to_json()]
    reply = await gateway.admin.post(ENTRIES, {"entries": entries})
    assert reply.status == 201, reply.body
    assert reply.json() == {"size": 8, "head": gateway.builder.directory.head.hex()}
    # The new device can authenticate at once.
    assert (await gateway.client(carl.kid, carl.signing_key).get(ENTRIES)).status == 200

    anna = gateway.client("so-nordost/anna/1")
    tail = (await anna.get(ENTRIES + "?after=5")).json()
    assert tail["size"] == 8
    assert tail["entries"] == entries
    page = (await anna.get(ENTRIES + "?after=-1&limit=2")).json()["entries"]
    assert [e["seq"] for e in page] == [0, 1]

    # A client rebuilding from pinned admins verifies everything the gateway serves.
    mirror = Directory({"admin/root/1": gateway.admin_key.verify_key})
    for raw in (await anna.get(ENTRIES)).json()["entries"]:
        mirror.append(DirectoryEntry.from_json(raw))
    assert mirror.head == gateway.builder.directory.head


@pytest.mark.asyncio
async def test_forged_entry_refused_and_nothing_stored(gateway) -> None:
    good = gateway.builder.enrol(_pair("sav/carl/1"))
    forged = gateway.builder.enrol(_pair("sav/eve/1"))  # signed, then tampered with below
    body = forged.to_json()
    body["body"]["role"] = "integration"
    reply = await gateway.admin.post(ENTRIES, {"entries": [good.to_json(), body]})
    assert_problem(reply, 422, "directory_signature_invalid")
    anna = gateway.client("so-nordost/anna/1")
    assert (await anna.get(ENTRIES)).json()["size"] == 6  # not even the good one


@pytest.mark.asyncio
async def test_entry_signed_by_unknown_admin_is_refused(gateway) -> None:
    rogue = SigningKey.generate()
    entry = make_entry(
        gateway.builder.directory,
        "create_unit",
        {"unit": "socialjour", "kind": "socialjour", "name": "Socialjouren"},
        KeyId.parse("admin/rogue/1"),
        rogue,
        gateway.builder.clock + 1,
    )
    reply = await gateway.admin.post(ENTRIES, {"entries": [entry.to_json()]})
    assert_problem(reply, 422, "directory_not_admin")


@pytest.mark.asyncio
async def test_chain_break_and_malformed_requests(gateway) -> None:
    entry = gateway.builder.enrol(
        _pair("sav/carl/1"),
    ).to_json()
    entry["seq"] = 42
    assert_problem(
        await gateway.admin.post(ENTRIES, {"entries": [entry]}), 409, "directory_chain_broken"
    )
    assert_problem(await gateway.admin.post(ENTRIES, {"entries": []}), 400, "field_invalid")
    assert_problem(
        await gateway.admin.post(ENTRIES, {"entries": [], "force": True}), 400, "unknown_field"
    )
    assert_problem(await gateway.admin.post(ENTRIES, {}), 400, "field_missing")
    assert_problem(
        await gateway.admin.post(ENTRIES, {"entries": [{"seq": 6}]}), 422, "directory_entry_invalid"
    )
    anna = gateway.client("so-nordost/anna/1")
    assert_problem(await anna.get(ENTRIES + "?after=x"), 400, "field_invalid")
    assert_problem(await anna.get(ENTRIES + "?limit=1001"), 400, "field_invalid")


@pytest.mark.asyncio
async def test_checkpoint_is_signed_by_the_gateway_key(gateway) -> None:
    reply = await gateway.client("so-nordost/anna/1").get("/v1/directory/checkpoint")
    assert reply.status == 200
    checkpoint = Checkpoint.from_json(reply.json())
    checkpoint.verify(gateway.identity.verify_key)
    assert checkpoint.size == 6
    assert checkpoint.head == gateway.builder.directory.head
    assert str(checkpoint.signer) == "gateway/main/1"
    key = (await gateway.client("so-nordost/anna/1").get("/v1/gateway/key")).json()
    assert key["verify_key"] == gateway.identity.verify_key.b64()


@pytest.mark.asyncio
async def test_instance_catches_up_with_entries_stored_by_another(gateway, start) -> None:
    """Two instances on one database: entries appended through one are seen by the other."""
    from gateway.app import create_app
    from gateway.appkeys import DIRECTORY, SESSIONMAKER

    other = create_app(gateway.settings, gateway.identity)
    # Only the database wiring of the second instance is needed here.
    wiring = other.cleanup_ctx[0](other)
    assert isinstance(wiring, AsyncIterator)  # the database ctx is an async generator
    ctx = wiring.__aiter__()
    await ctx.__anext__()
    try:
        carl = _pair("sav/carl/1")
        await other[DIRECTORY].append(
            other[SESSIONMAKER],
            [gateway.builder.enrol(carl).to_json()],
            caller=KeyId.parse("admin/root/1"),
            now=0,
        )
        reply = await gateway.client(carl.kid, carl.signing_key).get(ENTRIES)
        assert reply.status == 200
        assert reply.json()["size"] == 7
    finally:
        with pytest.raises(StopAsyncIteration):
            await ctx.__anext__()


@pytest.mark.asyncio
async def test_an_empty_gateway_takes_entry_zero_from_a_pinned_admin_only(start) -> None:
    gw = await start(seed=False)
    first = gw.builder.entry(
        "add_admin", {"admin": "admin/root/1", "verify_key": gw.admin_key.verify_key.b64()}
    )
    # Someone with a key of their own cannot seed the empty gateway with their trust root.
    mallory = SigningKey.generate()
    forged = make_entry(
        Directory({"admin/root/1": mallory.verify_key}),
        "add_admin",
        {"admin": "admin/root/1", "verify_key": mallory.verify_key.b64()},
        KeyId.parse("admin/root/1"),
        mallory,
        1,
    )
    assert_problem(
        await gw.client("admin/root/1", mallory).post(ENTRIES, {"entries": [forged.to_json()]}),
        401,
        "signature_invalid",
    )
    # The bootstrap is for the directory endpoints only.
    # (An admin not yet in the directory is answered like any unknown kid.)
    assert_problem(await gw.admin.get("/v1/outbox"), 401, "signature_invalid")
    empty = await gw.admin.get(ENTRIES)
    assert empty.status == 200
    assert empty.json()["entries"] == []
    reply = await gw.admin.post(ENTRIES, {"entries": [first.to_json()]})
    assert reply.status in (200, 201), reply.body
    listed = await gw.admin.get(ENTRIES)
    assert listed.status == 200
    assert [e["seq"] for e in listed.json()["entries"]] == [0]

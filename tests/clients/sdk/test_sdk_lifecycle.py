"""What a sender is told when a message ends without a handover, and the push stream's
resume after a dropped connection."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.appkeys import PUSH_HUB, SESSIONMAKER
from gateway.jobs.expiry import expire_messages
from keys.protocol.problems import MessageGone, MessageNotFound
from keys.protocol.refusals import ConsentWithdrawn
from tests.support.gateway import RunningGateway
from tests.support.sdk import (
    ANNA,
    BO,
    blob_files,
    client,
    message_args,
    next_event,
    record_consent,
    sql,
)


@pytest.mark.asyncio
async def test_expiry_tells_the_sender_not_handed_over(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        sent = await anna.send(**message_args(consent_id, expires_in_s=600))
        events = anna.events(reconnect_delay_s=0.05)
        try:
            # Not yet due: nothing happens.
            blobs = gateway.settings.blobs
            assert (
                await expire_messages(gateway.app[SESSIONMAKER], blobs, now=int(time.time())) == 0
            )
            later = int(time.time()) + 3600  # a fake "now" past the expiry
            assert await expire_messages(gateway.app[SESSIONMAKER], blobs, now=later) == 1
            notice = await next_event(events, "outbox.expired")
        finally:
            await events.aclose()
        assert notice.message_id == sent.message_id
        assert notice.data.get("reason") == "not_collected"
        assert (await anna.status(sent.message_id))["state"] == "expired"
        assert blob_files(gateway) == []
        with pytest.raises((MessageGone, MessageNotFound)):
            await bo.fetch(sent.message_id, tmp_path / "late")
        assert not (tmp_path / "late").exists()


@pytest.mark.asyncio
async def test_withdrawal_withdraws_pending_messages_and_tells_the_sender(
    gateway: RunningGateway,
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        first = await anna.send(**message_args(consent_id))
        second = await anna.send(**message_args(consent_id))
        events = anna.events(reconnect_delay_s=0.05)
        try:
            await bo.withdraw_consent(consent_id, "subject_withdrew")
            told = {(await next_event(events, "outbox.withdrawn")).message_id for _ in range(2)}
        finally:
            await events.aclose()
        assert told == {first.message_id, second.message_id}
        for sent in (first, second):
            assert (await anna.status(sent.message_id))["state"] == "withdrawn"
        rows = await sql(gateway, "SELECT blob_key FROM messages")
        assert rows == [(None,), (None,)]
        assert blob_files(gateway) == []
        assert await sql(gateway, "SELECT kid FROM message_recipients") == []
        assert (await bo.inbox())["messages"] == []
        with pytest.raises(ConsentWithdrawn):
            await anna.send(**message_args(consent_id))


@pytest.mark.asyncio
async def test_event_stream_resumes_after_the_connection_drops(gateway: RunningGateway) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        events = bo.events(reconnect_delay_s=0.05)
        try:
            first = await anna.send(**message_args(consent_id))
            got_first = await next_event(events, "inbox.new")
            assert got_first.message_id == first.message_id
            # The gateway drops every open stream (a restart, a proxy timeout).
            hub = gateway.app[PUSH_HUB]
            dropped = set(hub.sockets)
            assert dropped
            await asyncio.gather(*(ws.close() for ws in dropped))
            second = await anna.send(**message_args(consent_id))
            got_second = await next_event(events, "inbox.new")
            assert hub.sockets
            assert not hub.sockets & dropped  # it came over a new connection
        finally:
            await events.aclose()
        # Resumed after the last seq seen: the next event, not the first one again.
        assert got_second.message_id == second.message_id
        assert got_second.seq > got_first.seq

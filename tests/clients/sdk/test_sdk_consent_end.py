"""A consent's end is an end, through the SDK against a real gateway on both stores.

- at send time the gateway caps the message's expiry at the consent's ``valid_until``
  and says so (the SDK's ``expires``; the signed header keeps the requested one);
- once ``valid_until`` passed, nothing under the consent is listed, fetched or
  receipted — also before the job ran (the recipient races it);
- the job ends the message like a withdrawal: content destroyed, the sender told with
  the reason ``consent_ended``, the status and the audit trail say so.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from gateway.appkeys import SESSIONMAKER
from gateway.jobs.expiry import expire_messages
from keys.protocol.refusals import ConsentExpired
from tests.support.gateway import RunningGateway
from tests.support.sdk import (
    ANNA,
    BO,
    blob_files,
    client,
    consent_fields,
    content_rows,
    message_args,
    next_event,
    sql,
)

LIFETIME_S = 4  # the consent ends this many seconds after it is recorded


async def _wait_until(moment: int) -> None:
    # Real time: the gateway's request path reads its own clock (no test hook).
    await asyncio.sleep(max(0.0, moment - time.time()) + 0.05)


@pytest.mark.asyncio
async def test_a_consent_that_ends_ends_its_pending_messages(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        until = int(time.time()) + LIFETIME_S
        consent_id = await anna.record_consent(
            consent_fields(
                ANNA, [("so-nordost", "sav")], purposes=("transfer_to_sav",), valid_until=until
            )
        )
        # Two messages: one the recipient fetched before the end, one it never touched.
        fetched = await anna.send(**message_args(consent_id, expires_in_s=3600))
        untouched = await anna.send(**message_args(consent_id, expires_in_s=3600))
        # Capped at send time, and the sender is told: the gateway's expiry, not its own.
        for sent in (fetched, untouched):
            assert sent.requested_expires is not None
            assert sent.requested_expires > until
            assert sent.expires == until
            assert sent.answer["expires"] == until
            assert (await anna.status(sent.message_id))["expires"] == until
        await bo.fetch(fetched.message_id, tmp_path / "before")
        assert (tmp_path / "before").exists()

        await _wait_until(until)
        # The job has not run: the gateway still holds both, and hands out neither.
        assert (await content_rows(gateway, untouched.message_id))["blob_key"] is not None
        assert (await bo.inbox())["messages"] == []
        with pytest.raises(ConsentExpired):
            await bo.fetch(untouched.message_id, tmp_path / "after")
        assert not (tmp_path / "after").exists()
        with pytest.raises(ConsentExpired):
            await bo.ack(fetched.message_id)  # no handover recorded after the end
        states = await sql(gateway, "SELECT state FROM messages ORDER BY state")
        assert sorted(s for (s,) in states) == ["accepted", "delivered"]

        events = anna.events(reconnect_delay_s=0.05)
        try:
            ended = await expire_messages(
                gateway.app[SESSIONMAKER], gateway.settings.blobs, now=int(time.time())
            )
            assert ended == 2
            told = [await next_event(events, "outbox.withdrawn") for _ in range(2)]
        finally:
            await events.aclose()
        assert {e.message_id for e in told} == {fetched.message_id, untouched.message_id}
        assert {e.data.get("reason") for e in told} == {"consent_ended"}
        for sent in (fetched, untouched):
            status = await anna.status(sent.message_id)
            assert (status["state"], status["reason"]) == ("withdrawn", "consent_ended")
            assert await content_rows(gateway, sent.message_id) == {
                "blob_key": None,
                "recipients": [],
                "files": [],
            }
        assert blob_files(gateway) == []
        audited = await sql(
            gateway, "SELECT data_json FROM audit_entries WHERE event = 'message_withdrawn'"
        )
        assert sorted(json.loads(d)["reason"] for (d,) in audited) == ["consent_ended"] * 2
        # A second run (another instance, a retry) ends nothing twice.
        again = await expire_messages(
            gateway.app[SESSIONMAKER], gateway.settings.blobs, now=int(time.time())
        )
        assert again == 0


@pytest.mark.asyncio
async def test_a_message_within_the_consent_keeps_its_own_expiry(
    gateway: RunningGateway,
) -> None:
    async with client(gateway, ANNA) as anna:
        consent_id = await anna.record_consent(
            consent_fields(ANNA, [("so-nordost", "sav")], purposes=("transfer_to_sav",))
        )
        sent = await anna.send(**message_args(consent_id, expires_in_s=600))
        assert sent.expires == sent.requested_expires
        # Past its own expiry but not the consent's end: expired, not withdrawn.
        later = int(time.time()) + 700
        assert await expire_messages(gateway.app[SESSIONMAKER], gateway.settings.blobs, now=later)
        status = await anna.status(sent.message_id)
        assert (status["state"], status["reason"]) == ("expired", "not_collected")

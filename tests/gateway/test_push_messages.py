"""Push with real traffic: a signed, sealed send reaches the recipient's socket at once;
expiry of a really sent message pushes the "not handed over" notice to the sender."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_push import assert_silent, connect, receive

from gateway.appkeys import SESSIONMAKER
from gateway.jobs import expiry as jobs
from tests.support.gateway import blob_files
from tests.support.messages import (
    ANNA,
    BERTIL,
    BO,
    audit_events,
    recipient_rows,
    record_consent,
    send_new,
)

# A 30 s poll: an event that arrives within test_push.QUICK_S came by the in-process wake.
NO_POLL = {"events_poll_interval_s": 30.0}


@pytest.mark.asyncio
async def test_a_send_reaches_the_recipients_socket_without_the_poll(start: Any) -> None:
    gw = await start(**NO_POLL)
    consent = await record_consent(gw)
    bo, bertil = await connect(gw, BO), await connect(gw, BERTIL)
    try:
        header, _ = await send_new(gw, consent["consent_id"])
        event = await receive(bo)
        assert event["kind"] == "inbox.new"
        assert event["message_id"] == header.message_id
        # Metadata only: the event never carries content or the subject reference.
        assert "subject_ref" not in event["data"]
        assert consent["subject_ref"] not in json.dumps(event)
        await assert_silent(bertil)  # same unit as the sender, not a recipient
    finally:
        await bo.close()
        await bertil.close()


@pytest.mark.asyncio
async def test_expiry_of_a_sent_message_pushes_the_notice(start: Any) -> None:
    gw = await start(**NO_POLL)
    consent = await record_consent(gw)
    header, _ = await send_new(gw, consent["consent_id"])
    assert blob_files(gw)
    anna = await connect(gw, ANNA)
    try:
        await assert_silent(anna)
        blobs = gw.settings.blobs
        assert await jobs.expire_messages(gw.app[SESSIONMAKER], blobs, now=header.expires) == 1
        notice = await receive(anna)
        assert notice["kind"] == "outbox.expired"
        assert notice["message_id"] == header.message_id
        assert notice["data"]["reason"] == "not_collected"
    finally:
        await anna.close()
    assert blob_files(gw) == []
    assert await recipient_rows(gw, header.message_id) == []
    expired = [data for event, data in await audit_events(gw) if event == "message_expired"]
    assert len(expired) == 1
    assert header.message_id in expired[0]

"""Authorisation is decided at commit, not when an upload starts (both stores).

A real streamed PUT whose body stalls half-way; while it stalls, a security admin
revokes a device through the directory API; then the rest of the body arrives. The
send is refused with the code a send started after the revocation gets, and nothing
is stored: no message row, no recipient rows, no blob file (not even a ``.part``).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.gateway import Reply, RunningGateway, assert_problem, blob_files, stalled_request
from tests.support.messages import (
    ANNA,
    BO,
    ENVELOPE,
    count_messages,
    header_for,
    record_consent,
    seal_envelope,
    send,
)

ENTRIES = "/v1/directory/entries"
PADDING = b"Hotbildsbedomning, bilagor.\n" * 20_000  # ~560 KB: several chunks


async def _stalled_put(
    gw: RunningGateway, kid: str, message_id: str, envelope: bytes, resume: asyncio.Event
) -> Reply:
    """PUT ``envelope`` signed by ``kid``; half of it, then wait for ``resume``."""
    return await stalled_request(
        gw, kid, "PUT", f"/v1/messages/{message_id}", envelope, resume, content_type=ENVELOPE
    )


async def _upload_under_way(gw: RunningGateway) -> None:
    """Until the gateway streams the body into a temp file: the request was
    authenticated and the handler's checks at the start of the upload ran."""
    for _ in range(500):  # the file system has no event to wait on: poll, for 10 s
        if any(p.name.endswith(".part") for p in blob_files(gw)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the upload never started")


async def _revoke_mid_upload(gw: RunningGateway, sender: str, device: str) -> tuple[Reply, str]:
    """The refused reply, and the consent the message was sent under."""
    consent_id = (await record_consent(gw))["consent_id"]
    header = header_for(gw, consent_id=consent_id, sender=sender, recipients=(BO,))
    envelope = seal_envelope(gw, header, PADDING)
    resume = asyncio.Event()
    upload = asyncio.create_task(_stalled_put(gw, sender, header.message_id, envelope, resume))
    try:
        await _upload_under_way(gw)
        revoke = gw.builder.entry("revoke_device", {"device": device, "reason": "lost"})
        reply = await gw.admin.post(ENTRIES, {"entries": [revoke.to_json()]})
        assert reply.status == 201, reply.body
    finally:
        resume.set()
    refused = await upload
    assert await count_messages(gw) == 0
    assert blob_files(gw) == []
    return refused, consent_id


@pytest.mark.asyncio
async def test_a_recipient_revoked_while_the_upload_streams_is_refused(
    gateway: RunningGateway,
) -> None:
    refused, consent_id = await _revoke_mid_upload(gateway, ANNA, "sav/bo")
    # bo is the only device of sav: the unit is left with none.
    assert_problem(refused, 422, "recipient_unit_no_device")
    # The same code as a send that starts after the revocation.
    header = header_for(gateway, consent_id=consent_id, recipients=(BO,))
    later = await send(gateway, ANNA, header.message_id, seal_envelope(gateway, header))
    assert_problem(later, 422, "recipient_unit_no_device")


@pytest.mark.asyncio
async def test_a_sender_revoked_while_the_upload_streams_is_refused(
    gateway: RunningGateway,
) -> None:
    refused, consent_id = await _revoke_mid_upload(gateway, ANNA, "so-nordost/anna")
    assert_problem(refused, 403, "device_revoked")
    header = header_for(gateway, consent_id=consent_id, recipients=(BO,))
    later = await send(gateway, ANNA, header.message_id, seal_envelope(gateway, header))
    assert_problem(later, 403, "device_revoked")

"""Adversarial review of the endpoints: each test is a problem found (and fixed).

Every test runs on both stores (the ``gateway`` fixture) through the real app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from keys.protocol.httpsig import content_digest, new_nonce, sign_request
from tests.support.factories import SUBJECT
from tests.support.gateway import RunningGateway, assert_problem, blob_files
from tests.support.messages import (
    ANNA,
    BO,
    ENVELOPE,
    count_messages,
    header_for,
    message_row,
    receipt_for,
    recipient_rows,
    record_consent,
    seal_envelope,
    send,
    send_new,
)


@pytest.mark.asyncio
async def test_deeply_nested_json_is_refused_not_a_500(gateway: RunningGateway) -> None:
    # Threat: a body of 100 000 '[' made json.loads raise RecursionError, which no
    # handler expected: a 500 with a logged traceback for each such request, instead of
    # a stable refusal code.
    for path in ("/v1/consents", "/v1/directory/entries"):
        body = b"[" * 100_000
        client = gateway.admin if path.startswith("/v1/directory") else gateway.client(ANNA)
        reply = await client.request("POST", path, data=body, content_type="application/json")
        assert_problem(reply, 400, "json_invalid")
        nested = b'{"a":' * 30_000 + b"1" + b"}" * 30_000
        reply = await client.request("POST", path, data=nested, content_type="application/json")
        assert_problem(reply, 400, "json_invalid")


@pytest.mark.asyncio
async def test_subject_ref_with_trailing_newline_is_refused(gateway: RunningGateway) -> None:
    # Threat: ``^…$`` with re.match accepts a trailing "\n": a malformed pseudonym went
    # into the lookup and into the audit chain as if it were one.
    reply = await gateway.client(ANNA).get(f"/v1/consents?subject_ref={SUBJECT}%0A")
    assert_problem(reply, 400, "field_invalid")
    reply = await gateway.client(ANNA).get(
        "/v1/inbox?after=1.00000000-0000-0000-0000-000000000000%0A"
    )
    assert_problem(reply, 400, "field_invalid")


async def _slow(envelope: bytes, pause_s: float) -> AsyncIterator[bytes]:
    yield envelope[: len(envelope) // 2]
    await asyncio.sleep(pause_s)
    yield envelope[len(envelope) // 2 :]


@pytest.mark.asyncio
async def test_consent_is_decided_when_the_upload_ends_not_when_it_began(
    gateway: RunningGateway,
) -> None:
    # Threat: the decision time was read before the body streamed in. A sender could
    # start an upload while the consent was valid and trickle the body past its end
    # (or past the message's own expiry): accepted, and stamped as accepted back then.
    t = int(time.time())
    consent = await record_consent(gateway, valid_until=t + 3)
    header = header_for(gateway, consent_id=consent["consent_id"], recipients=(BO,))
    envelope = seal_envelope(gateway, header)
    path = f"/v1/messages/{header.message_id}"
    url = gateway.url.with_path(path)
    headers = {"Content-Type": ENVELOPE}
    headers.update(
        sign_request(
            gateway.devices[ANNA].signing_key,
            ANNA,
            method="PUT",
            path=path,
            query="",
            content_digest=content_digest(envelope),
            created=int(time.time()),
            nonce=new_nonce(),
        )
    )
    pause = t + 4 - time.time()
    async with gateway.http.put(url, data=_slow(envelope, pause), headers=headers) as resp:
        status, body = resp.status, await resp.json(content_type=None)
    assert status == 403, body
    assert body["code"] == "consent_expired"
    assert await count_messages(gateway) == 0


@pytest.mark.asyncio
async def test_a_retried_send_after_handover_stores_nothing_again(
    gateway: RunningGateway,
) -> None:
    # Threat: the idempotent-retry path re-storing content the handover deleted.
    consent = await record_consent(gateway)
    header, envelope = await send_new(gateway, consent["consent_id"])
    mid = header.message_id
    bo = gateway.client(BO)
    assert (await bo.get(f"/v1/messages/{mid}/envelope")).status == 200
    reply = await bo.post(f"/v1/messages/{mid}/receipt", receipt_for(gateway, header))
    assert reply.status == 200, reply.body
    for _ in range(2):
        retry = await send(gateway, ANNA, mid, envelope)
        assert retry.status == 200, retry.body
        assert blob_files(gateway) == []
        assert await recipient_rows(gateway, mid) == []
        row = await message_row(gateway, mid)
        assert row is not None
        assert row.state == "handed_over"
        assert row.blob_key is None

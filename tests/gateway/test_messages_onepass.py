"""One pass over an upload (issue 13 item 2): the envelope is checked while it streams,
so a wrong header is refused as soon as it has arrived — the rest of a large body is
never pulled, nothing reaches the disk — and a good large envelope is accepted without
the upload being read back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.appkeys import BLOBS, DIRECTORY, SESSIONMAKER, SETTINGS
from gateway.caller import Caller
from gateway.services.messages import send_message
from keys.crypto.keypairs import KeyId
from keys.protocol.problems import MessageIdMismatch, SenderMismatch
from tests.support.gateway import blob_files
from tests.support.messages import (
    ANNA,
    BERTIL,
    header_for,
    new_id,
    now,
    record_consent,
    seal_envelope,
)

PIECE = 64 * 1024


class Pulled:
    """A chunk source that counts how many chunks the service asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pulled = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        for at in range(0, len(self.data), PIECE):
            self.pulled += 1
            yield self.data[at : at + PIECE]


def _caller(kid: str) -> Caller:
    parsed = KeyId.parse(kid)
    return Caller(kid=parsed, unit=parsed.unit, device=parsed.device, is_admin=False)


async def _send(gw, caller: Caller, message_id: str, source: Pulled):
    app = gw.app
    return await send_message(
        app[SESSIONMAKER],
        caller,
        message_id,
        source.chunks(),
        directory=app[DIRECTORY].directory,
        settings=app[SETTINGS],
        blobs=app[BLOBS],
        now=now(),
    )


@pytest.mark.asyncio
async def test_a_wrong_header_is_refused_before_the_body_streams(gateway) -> None:
    consent = (await record_consent(gateway))["consent_id"]
    header = header_for(gateway, consent_id=consent)
    envelope = seal_envelope(gateway, header, b"x" * (2 << 20))  # 33 chunks of 64 KiB
    source = Pulled(envelope)
    with pytest.raises(MessageIdMismatch):
        await _send(gateway, _caller(ANNA), new_id(), source)
    assert source.pulled == 1
    source = Pulled(envelope)
    with pytest.raises(SenderMismatch):
        await _send(gateway, _caller(BERTIL), header.message_id, source)
    assert source.pulled == 1
    assert blob_files(gateway) == []
    # The same bytes, right: every chunk pulled once, accepted, stored whole.
    source = Pulled(envelope)
    result = await _send(gateway, _caller(ANNA), header.message_id, source)
    assert result.status == 201
    assert result.body["size"] == len(envelope)
    assert source.pulled == -(-len(envelope) // PIECE)
    stored = blob_files(gateway)
    assert len(stored) == 1
    assert stored[0].read_bytes() == envelope

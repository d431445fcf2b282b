"""Messages end to end through the SDK: send → push → fetch → open → ack → receipt."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from clients.sdk import StafettClient
from keys.protocol.problems import MessageGone, MessageIdConflict, MessageNotFound
from tests.support.gateway import RunningGateway
from tests.support.sdk import (
    ANNA,
    BO,
    BODY,
    client,
    content_rows,
    device_keystore,
    message_args,
    next_event,
    record_consent,
    sql,
)


@pytest.mark.asyncio
async def test_full_cycle(gateway: RunningGateway, tmp_path: Path) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        bo_events = bo.events(after=0, reconnect_delay_s=0.05)
        anna_events = anna.events(after=0, reconnect_delay_s=0.05)
        try:
            source = tmp_path / "case.txt"
            source.write_bytes(BODY)
            progress: list[tuple[int, int]] = []
            sent = await anna.send(
                **message_args(consent_id, body=source),
                progress=lambda d, t: progress.append((d, t)),
            )
            assert sent.status == 201
            assert not sent.replayed
            assert sent.recipients == (BO,)
            assert progress
            assert progress[-1][0] == progress[-1][1] == sent.size
            held = await content_rows(gateway, sent.message_id)
            assert held["blob_key"] is not None
            assert held["files"]
            assert held["recipients"]

            pushed = await next_event(bo_events, "inbox.new")
            assert pushed.message_id == sent.message_id
            inbox = await bo.inbox()
            assert [m["message_id"] for m in inbox["messages"]] == [sent.message_id]

            dest = tmp_path / "received" / "case.txt"
            dest.parent.mkdir()
            opened = await bo.fetch(sent.message_id, dest)
            assert dest.read_bytes() == BODY
            assert opened.sender == ANNA
            assert opened.consent_id == consent_id
            assert opened.header_hash == sent.header_hash
            assert sorted(p.name for p in dest.parent.iterdir()) == ["case.txt"]  # no temp left

            await bo.ack(sent.message_id)
            # Content gone at once: blob, wrapped-key index, blob file.
            gone = await content_rows(gateway, sent.message_id)
            assert gone == {"blob_key": None, "recipients": [], "files": []}
            assert (await anna.status(sent.message_id))["state"] == "handed_over"

            receipt = await anna.receipt(sent.message_id)
            assert receipt.accepted
            assert receipt.recipient == BO
            assert (
                receipt.recipient_fingerprint
                == gateway.devices[BO].signing_key.verify_key.fingerprint()
            )
            done = await next_event(anna_events, "outbox.handed_over")
            assert done.message_id == sent.message_id
        finally:
            await bo_events.aclose()
            await anna_events.aclose()


class AnswerDroppingProxy:
    """A TCP relay to the gateway that cuts the first PUT off after the gateway answered:
    the envelope is stored, the sender never hears so (a network failure at the worst
    moment). The SDK must retry with the same message id and get the original answer."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.dropped = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        first = await reader.read(65536)
        drop = first.startswith(b"PUT ") and self.dropped == 0
        self.dropped += drop
        up_writer.write(first)

        async def to_gateway() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        async def to_client() -> None:
            while data := await up_reader.read(65536):
                if drop:
                    break  # the gateway answered: swallow it and hang up
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(to_gateway(), to_client(), return_exceptions=True)
        up_writer.close()


@pytest.mark.asyncio
async def test_retry_after_a_lost_answer_gets_the_original_answer(
    gateway: RunningGateway,
) -> None:
    proxy = AnswerDroppingProxy(gateway.url.port or 0)
    url = await proxy.start()
    # One request per connection, so the relay sees where each request starts.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    try:
        async with StafettClient(
            url, device_keystore(gateway, ANNA), session=session, retry_backoff_s=0
        ) as anna:
            consent_id = await record_consent(anna)
            sent = await anna.send(**message_args(consent_id))
            assert proxy.dropped == 1
            assert sent.attempts == 2
            assert sent.replayed
            assert sent.status == 200
            (accepted_at,) = (
                await sql(
                    gateway, "SELECT accepted_at FROM messages WHERE id = :m", m=sent.message_id
                )
            )[0]
            assert sent.answer["accepted_at"] == accepted_at
            assert sent.answer["header_hash"] == sent.header_hash
            assert len(await sql(gateway, "SELECT id FROM messages")) == 1
            # Another envelope under the same id is not a retry: refused, first one kept.
            with pytest.raises(MessageIdConflict):
                await anna.send(
                    **message_args(consent_id, message_id=sent.message_id, body=b"other")
                )
            assert (await anna.status(sent.message_id))["header_hash"] == sent.header_hash
    finally:
        await session.close()
        await proxy.close()


@pytest.mark.asyncio
async def test_recall_before_handover(gateway: RunningGateway, tmp_path: Path) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        consent_id = await record_consent(anna)
        sent = await anna.send(**message_args(consent_id))
        answer = await anna.recall(sent.message_id)
        assert answer["state"] == "recalled"
        assert (await content_rows(gateway, sent.message_id))["files"] == []
        with pytest.raises((MessageGone, MessageNotFound)):
            await bo.fetch(sent.message_id, tmp_path / "gone")
        assert not (tmp_path / "gone").exists()

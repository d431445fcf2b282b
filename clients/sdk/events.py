"""The device's event stream (WebSocket ``/v1/events``) with automatic resume.

The gateway keeps every event in its database; a client that reconnects with
``?after=<last seq it processed>`` misses nothing. So a dropped connection, a gateway
restart or a "too slow, resume" close (1013) is handled here by reconnecting with a
freshly signed upgrade request (a signature is single-use: the nonce) and skipping any
event at or below the cursor, so a consumer sees each seq once, in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import aiohttp

from clients.errors import GatewayUnavailable, UnexpectedResponse
from clients.sdk.results import PushEvent
from clients.sdk.transport import Transport


async def stream_events(
    transport: Transport,
    after: int = 0,
    *,
    reconnect_delay_s: float = 1.0,
    max_reconnects: int | None = None,
) -> AsyncGenerator[PushEvent, None]:
    """Yield events with seq > ``after`` forever, reconnecting when the stream drops.

    ``max_reconnects`` bounds consecutive failed (re)connections; ``None`` retries
    forever. A refusal of the upgrade (authentication, rate limit) is raised, not
    retried: retrying a revoked key's request would only fill the audit log.
    """
    cursor = after
    failures = 0
    while True:
        try:
            ws = await transport.websocket("/v1/events", {"after": cursor})
        except GatewayUnavailable:
            failures += 1
            if max_reconnects is not None and failures > max_reconnects:
                raise
            await asyncio.sleep(reconnect_delay_s)
            continue
        failures = 0
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break  # closing, closed or an error frame: reconnect below
                try:
                    event = PushEvent.from_json(json.loads(message.data))
                except ValueError:
                    raise UnexpectedResponse("an event frame is not JSON") from None
                if event.seq <= cursor:
                    continue  # already delivered before a reconnect
                cursor = event.seq
                yield event
        finally:
            await ws.close()
        await asyncio.sleep(reconnect_delay_s)

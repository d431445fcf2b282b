"""The webhook job: enqueue new events, post the due deliveries, record each outcome.

A plain async function (``deliver_webhooks(sessionmaker, now=..., key=...)``); the
scheduler only triggers it. The HTTP client has a short timeout, follows no redirects
(threat: a registered endpoint bouncing the gateway to an internal address) and
connects only to public addresses (``gateway.webhook_target``: SSRF).
Nothing about a failure but its HTTP status or error class is kept or logged.
"""

from __future__ import annotations

import asyncio

import aiohttp

from gateway import webhook_target
from gateway.db.engine import SessionMaker
from gateway.services import webhooks
from keys.crypto.keypairs import SigningKey
from keys.domain import webhooks as policy


async def _post(
    http: aiohttp.ClientSession,
    item: webhooks.Claim,
    now: int,
    timeout_s: float,
    allow_loopback: bool,
) -> tuple[int | None, str | None]:
    body = policy.body_bytes(item.payload)
    headers = policy.sign(item.secret, item.message_id, now, body)
    try:
        webhook_target.check_literal(item.url, allow_loopback=allow_loopback)
        async with http.post(
            item.url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            return resp.status, None if resp.status < 300 else "http_status"
    except webhook_target.AddressRefused:
        return None, "address_refused"
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, webhook_target.AddressRefused):
            return None, "address_refused"
        return None, type(exc).__name__[:64]
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return None, type(exc).__name__[:64]


async def deliver_webhooks(
    sessionmaker: SessionMaker,
    *,
    now: int,
    key: SigningKey,
    timeout_s: float = 10.0,
    allow_loopback: bool = False,
) -> int:
    """One run; returns how many deliveries were tried."""
    await webhooks.enqueue(sessionmaker, now=now)
    claims = await webhooks.claim(sessionmaker, now=now, key=key)
    if not claims:
        return 0
    async with webhook_target.delivery_session(allow_loopback=allow_loopback) as http:
        results = await asyncio.gather(
            *(_post(http, c, now, timeout_s, allow_loopback) for c in claims)
        )
    for item, (status, error) in zip(claims, results, strict=True):
        await webhooks.settle(sessionmaker, item, status=status, error=error, now=now)
    return len(claims)

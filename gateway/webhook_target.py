"""Where a webhook may point: public addresses only.

Threat (SSRF): a device of a unit registers ``https://10.0.0.5/admin`` or a name that
resolves to ``127.0.0.1``, ``169.254.169.254`` (a cloud metadata service) or another
host inside the city's network, and the gateway — which sits inside that network —
POSTs to it on the unit's behalf, again and again (retries), and reports the HTTP status
back in the delivery list: a probe of internal services from the outside. So every
address the host resolves to must be a public unicast address (not loopback, private,
link-local, multicast, reserved, unspecified, shared CGNAT; an IPv4-mapped IPv6 address
is judged as the IPv4 it maps), checked

- at registration (a clear ``field_invalid`` instead of a webhook that can never work),
- and at every delivery, by the resolver the delivery's connector uses: aiohttp
  connects only to the addresses this resolver returned, so the check and the
  connection use the same answer (a DNS name that re-binds to 127.0.0.1 after
  registration is refused at delivery, with no window between check and connect).

``allow_loopback`` (the ``webhook_allow_loopback_http`` test setting) lets loopback
through (tests, a local relay), never the private ranges. Redirects are not followed
(``gateway.jobs.webhooks``), so a public endpoint cannot bounce the gateway inward.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from keys.protocol.problems import FieldInvalid

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(OSError):
    """The endpoint's host resolves to an address the gateway must not connect to."""


def _allowed(ip: _IP, *, allow_loopback: bool) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    return ip.is_global and not ip.is_multicast


def check_address(text: str, *, allow_loopback: bool) -> None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        raise AddressRefused("not an IP address") from None
    if not _allowed(ip, allow_loopback=allow_loopback):
        raise AddressRefused("a non-public address")


class PublicResolver(AbstractResolver):
    """Resolves like aiohttp's default, then refuses the whole answer if any address in
    it is not public (a name with one public and one internal address is refused: the
    connector might try either)."""

    def __init__(self, *, allow_loopback: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_loopback = allow_loopback

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            check_address(answer["host"], allow_loopback=self._allow_loopback)
        return answers

    async def close(self) -> None:
        await self._inner.close()


def delivery_session(*, allow_loopback: bool) -> aiohttp.ClientSession:
    """The HTTP client for deliveries: every connection through ``PublicResolver``; no
    proxy from the environment (it would connect on our behalf, unchecked)."""
    connector = aiohttp.TCPConnector(resolver=PublicResolver(allow_loopback=allow_loopback))
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def check_literal(url: str, *, allow_loopback: bool) -> None:
    """aiohttp does not ask the resolver about an IP literal: check it here."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a name: the resolver checks it
    check_address(host, allow_loopback=allow_loopback)


async def check_at_registration(url: str, *, allow_loopback: bool) -> None:
    """Refuse (``field_invalid``) a URL whose host is or resolves to a non-public address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for info in infos:
            check_address(str(info[4][0]), allow_loopback=allow_loopback)
    except AddressRefused:
        raise FieldInvalid("url must point to a public address") from None
    except OSError:
        raise FieldInvalid("url host does not resolve") from None

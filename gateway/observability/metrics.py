"""Prometheus metrics of one gateway instance, served at ``GET /metrics``.

Labels are bounded and carry no identifiers: a route *template*
(``/v1/messages/{message_id}``), an HTTP status, a problem code, a job name. Never a
message id, a kid or a unit — both to keep series bounded and because who talks to
whom, and when, is itself sensitive metadata.

Who may read /metrics (threat: the figures are operational metadata — traffic per
route, refusals per code, pending messages — that tell an outsider when a unit is
active; and scraping runs a database count, so an open endpoint is also a cheap way to
load the database). The rule: the TCP peer must be in ``metrics_allow`` (loopback by
default) *and* the request must not have come through a proxy (a Forwarded or
X-Forwarded-For header: with nginx on the same host every public client would
otherwise look like loopback); if ``metrics_token`` is set, ``Authorization: Bearer``
must match it too, compared in constant time (no timing oracle on the token). deploy/
nginx.conf refuses /metrics at the public face as well.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler

from gateway.appkeys import PUSH_HUB, SESSIONMAKER, SETTINGS
from gateway.db import message_store
from gateway.services.message_content import PENDING_STATES
from keys.protocol.problems import Forbidden

log = logging.getLogger("gateway.metrics")

Job = Callable[[int], Awaitable[int]]

# Seconds from accepted to handed over: minutes to weeks (the longest TTL is 30 days).
_HANDOVER_BUCKETS = (60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)


class Metrics:
    """The instruments of one app, in a registry of its own (several apps in one test
    process must not share counters)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "stafett_http_requests",
            "HTTP requests by route template, status and problem code ('' when none)",
            ["method", "route", "status", "code"],
            registry=r,
        )
        self.duration = Histogram(
            "stafett_http_request_duration_seconds",
            "Time to answer a request, by route template",
            ["route"],
            registry=r,
        )
        self.handover = Histogram(
            "stafett_handover_latency_seconds",
            "From a message accepted by the gateway to its handover (accepted receipt)",
            buckets=_HANDOVER_BUCKETS,
            registry=r,
        )
        self.pending = Gauge(
            "stafett_messages_pending",
            "Messages accepted and not yet handed over, rejected or ended (counted at scrape)",
            registry=r,
        )
        self.job_runs = Counter("stafett_job_runs", "Periodic job runs", ["job"], registry=r)
        self.job_failures = Counter(
            "stafett_job_failures", "Periodic job runs that failed", ["job"], registry=r
        )
        self.job_items = Counter(
            "stafett_job_items", "Things the periodic jobs handled", ["job"], registry=r
        )
        self.expired = Counter(
            "stafett_messages_expired", "Messages ended by the expiry job", registry=r
        )
        self.push_connections = Gauge(
            "stafett_push_connections", "Open push (WebSocket) connections", registry=r
        )
        self.transport = Counter(
            "stafett_transport_refusals",
            "Connections or requests cut at the transport (timeouts, caps, parse errors)",
            ["reason"],
            registry=r,
        )

    def instrument(self, name: str, job: Job) -> Job:
        """Wrap a periodic job: count runs, failures and what it handled. The failure
        is re-raised for the scheduler to log (gateway.jobs.scheduler.run_job)."""

        async def run(now: int) -> int:
            self.job_runs.labels(name).inc()
            try:
                count = await job(now)
            except Exception:
                self.job_failures.labels(name).inc()
                raise
            self.job_items.labels(name).inc(count)
            if name == "expire_messages":
                self.expired.inc(count)
            return count

        return run


METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


def _allowed_networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(part.strip()) for part in spec.split(",") if part.strip()]


def may_scrape(request: web.Request) -> bool:
    settings = request.app[SETTINGS]
    if "Forwarded" in request.headers or "X-Forwarded-For" in request.headers:
        return False
    try:
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    if not any(peer in net for net in _allowed_networks(settings.metrics_allow)):
        return False
    if settings.metrics_token:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {settings.metrics_token}"
        return hmac.compare_digest(given.encode(), expected.encode())
    return True


async def _count_pending(request: web.Request) -> int:
    async with request.app[SESSIONMAKER]() as session:
        return await message_store.count_in_states(session, PENDING_STATES)


def metrics_view(app: web.Application) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    exposition = make_aiohttp_handler(app[METRICS].registry, disable_compression=True)

    async def get_metrics(request: web.Request) -> web.StreamResponse:
        if not may_scrape(request):
            raise Forbidden("metrics are for the operator's scraper only")
        metrics = request.app[METRICS]
        metrics.pending.set(await _count_pending(request))
        hub = request.app.get(PUSH_HUB)
        metrics.push_connections.set(len(hub.sockets) if hub is not None else 0)
        return await exposition(request)

    return get_metrics


def handover_observer(app: web.Application) -> Callable[[int], None]:
    """What a first accepted receipt reports: seconds from acceptance to handover (the
    receipt's unit of work knows both, so the metric costs no query)."""
    histogram = app[METRICS].handover

    def observe(seconds: int) -> None:
        histogram.observe(max(0, seconds))

    return observe


def setup_metrics(app: web.Application) -> None:
    app[METRICS] = Metrics()
    app.router.add_get("/metrics", metrics_view(app))

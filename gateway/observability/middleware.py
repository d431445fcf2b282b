"""The outermost middleware: request id, per-address limit, access log, request metrics.

Access log: one line per request with the method, the route *template*, the status, the
duration, the request id and the problem code. Not the path: message and consent ids
are random UUIDs, not personal data, but a log of which ids were touched when is a
trail of handovers that needs no keeping in a log file (the audit trail keeps what must
be kept). Not the query string (cursors), not the peer address (the proxy logs those
under its own retention), never a header.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.appkeys import PROBLEM_CODE_KEY, REQUEST_ID_KEY, SETTINGS, VERIFIED_KID_KEY
from gateway.middlewares import problem_response
from gateway.observability.logs import REQUEST_ID, quiet_dependencies
from gateway.observability.metrics import METRICS, setup_metrics
from gateway.ratelimit import RateLimiter
from keys.protocol.problems import RateLimited, RequestTimeout

access_log = logging.getLogger("gateway.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Threat: log injection and confusion through a client-chosen id. Only short ids of
# letters, digits and dashes are taken (nginx's $request_id, a UUID); else a fresh one.
_SANE_ID = re.compile(r"[A-Za-z0-9-]{8,64}")

# Unauthenticated requests (no signature, or one that failed) per client address.
# Threat: one address hammering the gateway with junk signatures — each costs a
# directory read and a signature check, and none of it reaches the per-device limit.
# Authenticated requests never take a token; an address that has used up its tokens
# is refused before any work (an office behind one NAT shares a bucket: the burst is
# sized for failures, which legitimate devices rarely produce).
UNAUTH_LIMITER: web.AppKey[RateLimiter] = web.AppKey("unauth_limiter", RateLimiter)


def request_id_of(request: web.Request) -> str:
    incoming = request.headers.get("X-Request-Id", "")
    return incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex


def client_address(request: web.Request) -> str:
    """The peer, or the last hop of X-Forwarded-For when the peer is a trusted proxy
    (nginx appends the address it saw; earlier entries are the client's own claims)."""
    peer = request.remote or "-"
    trusted = {p.strip() for p in request.app[SETTINGS].trusted_proxies.split(",")}
    forwarded = request.headers.get("X-Forwarded-For")
    if peer in trusted and forwarded:
        return forwarded.rsplit(",", 1)[-1].strip() or peer
    return peer


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request[REQUEST_ID_KEY] = request_id_of(request)
    token = REQUEST_ID.set(request_id)
    started = time.monotonic()
    status = 500
    try:
        limiter = request.app[UNAUTH_LIMITER]
        address = client_address(request)
        if not limiter.has_token(address, started):
            request[PROBLEM_CODE_KEY] = RateLimited.code
            response: web.StreamResponse = problem_response(
                RateLimited.code, "Too many unauthenticated requests from this address", 429
            )
            response.headers["X-Request-Id"] = request_id
        else:
            response = await handler(request)
            if VERIFIED_KID_KEY not in request:
                limiter.allow(address, time.monotonic())
        if request.get(PROBLEM_CODE_KEY) == RequestTimeout.code:
            # Answer, then close: aiohttp would otherwise keep reading the rest of a
            # trickling body for its lingering time before closing.
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects, re-raised by problem_middleware
        status = exc.status
        raise
    finally:
        _record(request, status, time.monotonic() - started)
        REQUEST_ID.reset(token)


def _record(request: web.Request, status: int, duration_s: float) -> None:
    route, code = route_of(request), request.get(PROBLEM_CODE_KEY, "")
    metrics = request.app[METRICS]
    metrics.requests.labels(request.method, route, str(status), code).inc()
    metrics.duration.labels(route).observe(duration_s)
    duration_ms = round(duration_s * 1000, 1)
    access_log.info(
        "%s %s %d %.1fms %s",
        request.method,
        route,
        status,
        duration_ms,
        code or "-",
        extra={
            "method": request.method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "code": code,
        },
    )


def setup_observability(app: web.Application) -> None:
    """Call from create_app: limiter, metrics and the /metrics route (the middleware is
    listed in the app's middlewares, outermost)."""
    settings = app[SETTINGS]
    app[UNAUTH_LIMITER] = RateLimiter(
        settings.unauth_rate_limit_per_s, settings.unauth_rate_limit_burst
    )
    setup_metrics(app)
    quiet_dependencies()

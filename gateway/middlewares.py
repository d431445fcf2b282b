"""Cross-cutting HTTP behaviour: problem+json errors, request ids, limits, headers.

Threats: internals leaking through error pages (a 500 says "internal error" and a
request id, nothing else — the traceback stays in the server log); a client exhausting
memory with huge headers or bodies (refused before they are read); content sniffing or
framing of API responses by a browser (security headers on every response).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.appkeys import (
    CALLER_KEY,
    PROBLEM_CODE_KEY,
    REQUEST_ID_KEY,
    SESSIONMAKER,
    SETTINGS,
    VERIFIED_KID_KEY,
)
from gateway.caller import PendingNonce
from gateway.db import audit_trail as audit
from gateway.db import nonce_store
from keys.errors import StafettError
from keys.protocol.problems import (
    BadRequest,
    BodyTooLarge,
    GatewayError,
    HeadersTooLarge,
    InternalError,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    code_of,
    problem_body,
    status_of,
)

log = logging.getLogger("gateway.http")

PROBLEM_CONTENT_TYPE = "application/problem+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# Codes not audited when refused after authentication: a flooding device would
# otherwise turn every refused request into a database write, defeating the limit.
_NOT_AUDITED = frozenset({RateLimited.code})
_HTTP_CODES: dict[int, type[GatewayError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: BodyTooLarge,
    431: HeadersTooLarge,
}


def problem_response(code: str, detail: str | None, status: int) -> web.Response:
    body = problem_body(code, detail)
    body["status"] = status
    return web.json_response(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Set by gateway.observability.middleware (a sane incoming X-Request-Id or a fresh
    # one); a fresh one here when that layer is absent.
    request_id = request.get(REQUEST_ID_KEY) or uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except StafettError as exc:  # every registered refusal: one rendering
        response = await _refusal(request, code_of(exc), str(exc), status_of(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        cls = _HTTP_CODES.get(exc.status, BadRequest)
        response = await _refusal(request, cls.code, cls.title, exc.status)
    except Exception:
        # The traceback goes to the server log only, tied to the request id.
        log.exception("unhandled error (request id %s)", request_id)
        await _store_pending_nonce(request)
        response = problem_response(
            InternalError.code, f"internal error; request id {request_id}", 500
        )
        request[PROBLEM_CODE_KEY] = InternalError.code
    response.headers["X-Request-Id"] = request_id
    return response


async def _refusal(request: web.Request, code: str, detail: str, status: int) -> web.Response:
    request[PROBLEM_CODE_KEY] = code
    if status >= 500:
        log.error(
            "refusal %s with status %d (request id %s)", code, status, request[REQUEST_ID_KEY]
        )
        detail = f"{problem_body(code)['title']}; request id {request[REQUEST_ID_KEY]}"
    kid = request.get(VERIFIED_KID_KEY)
    if kid is not None and code not in _NOT_AUDITED:
        await _audit_refusal(request, kid, code)
    else:
        await _store_pending_nonce(request)
    return problem_response(code, detail, status)


def _pending_nonce(request: web.Request) -> PendingNonce | None:
    caller = request.get(CALLER_KEY)
    pending = None if caller is None else caller.nonce
    return None if pending is None or pending.stored else pending


async def _store_pending_nonce(request: web.Request) -> None:
    """A request that ended before its unit of work stored its nonce (a refusal, an
    error): stored now, so the same signed request can never be replayed later."""
    pending = _pending_nonce(request)
    if pending is None:
        return
    try:
        async with request.app[SESSIONMAKER].begin() as session:
            await nonce_store.record_nonce(session, pending.keyid, pending.nonce, pending.created)
        pending.stored = True
    except Exception:
        log.exception(
            "could not store a refused request's nonce (request id %s)", request[REQUEST_ID_KEY]
        )


async def _audit_refusal(request: web.Request, kid: str, code: str) -> None:
    """Refusals of authenticated callers are decisions too: record who and which code."""
    route = request.match_info.route.resource
    pending = _pending_nonce(request)
    try:
        async with request.app[SESSIONMAKER].begin() as session:
            if pending is not None:
                # In the same transaction: the refusal's entry and the request's nonce.
                await nonce_store.record_nonce(
                    session, pending.keyid, pending.nonce, pending.created
                )
            await audit.record(
                session,
                "request_refused",
                now=int(time.time()),
                kid=kid,
                code=code,
                method=request.method,
                route=route.canonical if route is not None else "",
            )
        if pending is not None:
            pending.stored = True
    except Exception:
        # Never turn a refusal into a 500; the failure itself is logged.
        log.exception("could not audit a refusal (request id %s)", request[REQUEST_ID_KEY])


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    header_bytes = sum(len(name) + len(value) for name, value in request.raw_headers)
    if header_bytes > settings.max_header_bytes:
        raise HeadersTooLarge()
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        # Refuse from the declared length, before a byte of the body is read.
        raise BodyTooLarge()
    return await handler(request)


async def add_security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: every response, streamed or not, error or not."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    # Do not advertise the server software and version.
    response.headers["Server"] = "stafett"

"""Transport hardening: what aiohttp's server does not bound by itself.

Threats (each bounded here, per instance):
- slowloris: a client opening connections and sending a request head one byte at a
  time, holding a connection (and a file descriptor) for ever. A request head must be
  complete within ``header_timeout_s`` of its first byte (and a new connection must
  start one within that time); else 408 and the connection closes.
- slow bodies: the same with a body. A body that stalls for ``body_idle_timeout_s`` or
  averages below ``body_min_bytes_per_s`` after that first period is refused with
  ``request_timeout`` (408) and the connection is closed (:func:`timed_chunks`).
- connection floods: more than ``max_connections`` open connections are answered 503
  and closed at once, so the process keeps descriptors for the ones it serves.
- parser errors echoing input: aiohttp answers an oversized header or a malformed
  request line with a text body quoting the offending bytes, and logs a traceback per
  malformed request (a log flood anyone can cause). :class:`GuardedHandler` answers
  problem+json (431 ``headers_too_large`` for an oversized header, 400 ``bad_request``
  otherwise) and logs one line without the input.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.blobs_pg import PgBlobReader
from gateway.settings import Settings
from keys.protocol.problems import (
    BadRequest,
    HeadersTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    problem_body,
)

log = logging.getLogger("gateway.transport")

PROBLEM_CONTENT_TYPE = "application/problem+json"


def server_kwargs(settings: Settings) -> dict[str, Any]:
    """What AppRunner passes to every connection's handler."""
    return {
        "access_log": None,  # gateway.observability writes the access log (route templates)
        # The parser's per-line limits: a backstop to limits_middleware's total.
        "max_field_size": settings.max_header_bytes,
        "max_line_size": settings.max_header_bytes,
        "keepalive_timeout": settings.keepalive_timeout_s,
    }


def _raw_problem(cls: type[Any], status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 problem response, for answers given outside aiohttp's
    request cycle (no request object exists yet)."""
    body = problem_body(cls.code)
    body["status"] = status
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\nServer: stafett\r\n\r\n"
    )
    return head.encode() + data


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler with a head timeout, a connection cap, and parser
    errors answered as problem+json with a one-line log."""

    def __init__(self, manager: web.Server, settings: Settings, **kwargs: Any) -> None:
        super().__init__(manager, loop=asyncio.get_running_loop(), **kwargs)
        self._settings = settings
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # --- connection cap -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        if manager is not None and len(manager.connections) >= self._settings.max_connections:
            self._refused = True
            log.warning("connection refused: %d open", len(manager.connections))
            raw = _raw_problem(ServiceUnavailable, 503, "Service Unavailable")
            transport.write(raw)  # type: ignore[attr-defined]
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        if not self._refused:
            super().connection_lost(exc)

    # --- head timeout ---------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        before = self._request_count
        super().data_received(data)
        if self._request_count > before:
            self._cancel_head_timer()  # a whole head arrived
        elif data and self._head_timer is None and self._idle():
            self._arm_head_timer()  # the first bytes of the next request's head

    def _idle(self) -> bool:
        return self._current_request is None and not self._messages and not self._upgraded

    def _arm_head_timer(self) -> None:
        self._head_timer = asyncio.get_running_loop().call_later(
            self._settings.header_timeout_s, self._head_timed_out
        )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._idle() or self.transport is None:
            return
        log.info("closed a connection whose request head was not complete in time")
        self.transport.write(_raw_problem(RequestTimeout, 408, "Request Timeout"))
        self.force_close()

    # --- parser errors ----------------------------------------------------------------
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status != 400 or exc is None:
            return super().handle_error(request, status, exc, message)
        # One line, the class only: the exception's text quotes the client's bytes.
        cls = HeadersTooLarge if isinstance(exc, LineTooLong) else BadRequest
        log.info("malformed request refused (%s)", type(exc).__name__)
        status = 431 if cls is HeadersTooLarge else 400
        body = problem_body(cls.code)
        body["status"] = status
        response = web.json_response(body, status=status, content_type=PROBLEM_CONTENT_TYPE)
        response.headers["Server"] = "stafett"
        response.force_close()
        return response


class GuardedSite(web.TCPSite):
    """A TCP site whose connections are served by :class:`GuardedHandler`."""

    def __init__(self, runner: web.AppRunner, settings: Settings) -> None:
        super().__init__(runner, settings.host, settings.port)
        self._settings = settings

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        kwargs = server_kwargs(self._settings)
        kwargs.pop("access_log")

        def factory() -> GuardedHandler:
            return GuardedHandler(server, self._settings, access_log=None, **kwargs)

        self._server = await asyncio.get_running_loop().create_server(
            factory, self._settings.host, self._settings.port, backlog=self._backlog
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._settings.port


async def timed_chunks(
    content: StreamReader, settings: Settings, chunk_size: int
) -> AsyncIterator[bytes]:
    """The body's chunks, refused with ``request_timeout`` when it stalls or trickles."""
    started = time.monotonic()
    total = 0
    while True:
        try:
            chunk = await asyncio.wait_for(
                content.read(chunk_size), timeout=settings.body_idle_timeout_s
            )
        except TimeoutError:
            raise RequestTimeout("no body bytes arrived for too long") from None
        if not chunk:
            return
        total += len(chunk)
        elapsed = time.monotonic() - started
        grace = settings.body_idle_timeout_s
        if elapsed > grace and total < settings.body_min_bytes_per_s * (elapsed - grace):
            raise RequestTimeout("the body arrived below the minimum rate")
        yield chunk


async def read_buffered(request: web.Request, settings: Settings) -> bytes:
    """``request.read()`` (bounded by client_max_size) within the body idle timeout."""
    try:
        return await asyncio.wait_for(request.read(), timeout=settings.body_idle_timeout_s)
    except TimeoutError:
        raise RequestTimeout("the body did not arrive in time") from None


def require_whole_blob(handle: BinaryIO | PgBlobReader, size: int, key: str) -> None:
    """Before answering an envelope: the file must hold ``size`` bytes. A truncated
    blob (a damaged disk, a restore gone wrong) would otherwise be served with a
    Content-Length it cannot fill, and the client would wait for bytes that never come
    until its own timeout. It is answered ``unavailable`` at once and logged."""
    actual = (
        handle.stored_size()
        if isinstance(handle, PgBlobReader)
        else os.fstat(handle.fileno()).st_size
    )
    if actual != size:
        handle.close()
        log.error("blob %s holds %d of %d bytes; not served", key, actual, size)
        raise ServiceUnavailable("the envelope is not available")

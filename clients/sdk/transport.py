"""Signed HTTP to the gateway, and problem+json mapped back to exception classes.

Every request under ``/v1`` is signed with ``keys.protocol.httpsig.sign_request`` (RFC 9421):
method, path, query and the body's Content-Digest, a fresh nonce and ``created`` from
the (injectable) clock. The signature is computed over the URL exactly as it goes on
the wire (``yarl.URL(..., encoded=True)``, never re-quoted by aiohttp), so what the
gateway rebuilds is byte for byte what was signed.

Answers: a 2xx is returned; a problem document is rebuilt into the registry's class
(``keys.protocol.problems.error_from_problem``), so a caller catches ``ConsentWithdrawn`` or
``Replayed`` just as the gateway raised it; anything else is ``UnexpectedResponse``;
a gateway that cannot be reached is ``GatewayUnavailable``.

Threats: a request captured behind the TLS proxy and replayed or altered (nonce,
created, covered components — checked by the gateway); a hostile or broken gateway
streaming an endless answer into memory (JSON answers are read up to a bound, bodies
are streamed to disk by the caller).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from clients.errors import GatewayUnavailable, UnexpectedResponse
from keys.crypto.keypairs import SigningKey
from keys.protocol.httpsig import content_digest, new_nonce, sign_request
from keys.protocol.problems import error_from_problem

PROBLEM_CONTENT_TYPE = "application/problem+json"
ENVELOPE_CONTENT_TYPE = "application/vnd.stafett.envelope"
CHUNK_BYTES = 64 * 1024
# A JSON answer from the gateway is a few KiB (1000 directory entries ≈ 600 KiB); more
# than this is not an answer we asked for (threat: memory exhaustion by the server).
MAX_JSON_BYTES = 8 * 1024 * 1024
_EMPTY_DIGEST = content_digest(b"")

Clock = Callable[[], float]
Progress = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)``, called as a body is sent or received."""

# What "the gateway cannot be reached" looks like in aiohttp: refused, reset, DNS, TLS,
# a server that hung up mid-answer, and timeouts.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
)


@dataclass(frozen=True)
class Signer:
    """Who signs: a device key version (``unit/name/N``) or a security admin kid."""

    kid: str
    key: SigningKey

    def __repr__(self) -> str:
        return f"Signer({self.kid})"


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise UnexpectedResponse(
                "the gateway's answer is not JSON", status=self.status
            ) from None


def raise_for_problem(status: int, content_type: str, body: bytes) -> None:
    """Raise the registry's exception for a refusal; return for a 2xx/3xx."""
    if status < 400:
        return
    problem: Any = None
    if content_type == PROBLEM_CONTENT_TYPE:
        try:
            problem = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            problem = None
    if not isinstance(problem, dict) or not isinstance(problem.get("code"), str):
        # A proxy's HTML error page or a foreign server: say so, never guess a class.
        raise UnexpectedResponse(f"HTTP {status} without a problem document", status=status)
    raise error_from_problem(problem)


def unavailable(base: URL, exc: BaseException) -> GatewayUnavailable:
    # The origin and the exception class say what to check; no request data is echoed.
    return GatewayUnavailable(
        f"the gateway at {base.origin()} could not be reached ({type(exc).__name__})"
    )


class Transport:
    """One signer, one base URL, one aiohttp session (owned unless passed in)."""

    def __init__(
        self,
        base_url: str | URL,
        signer: Signer,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = time.time,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self.base = URL(str(base_url))
        if not self.base.is_absolute():
            raise ValueError("the gateway URL must be absolute (https://host:port)")
        self.signer = signer
        self.clock = clock
        self._owns_session = session is None
        self._session = session
        self._timeout = timeout or aiohttp.ClientTimeout(total=None, connect=15, sock_read=120)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # --- URLs and signatures -----------------------------------------------------------
    def url(self, path: str, query: Mapping[str, str | int] | None = None) -> URL:
        """The absolute URL for ``path`` (already percent-encoded) and ``query``."""
        text = path
        if query:
            text += "?" + urlencode({k: str(v) for k, v in query.items()})
        return self.base.join(URL(text, encoded=True))

    def sign(
        self,
        method: str,
        url: URL,
        digest: str = _EMPTY_DIGEST,
        *,
        created: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        """The signature headers for one request (fresh nonce, ``created`` = clock)."""
        return sign_request(
            self.signer.key,
            self.signer.kid,
            method=method,
            path=url.raw_path,
            query=url.raw_query_string,
            content_digest=digest,
            created=int(self.clock()) if created is None else created,
            nonce=nonce or new_nonce(),
        )

    # --- raw sending (no signing, no error mapping) ----------------------------------------
    async def send(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str],
        body: bytes | AsyncIterator[bytes] = b"",
    ) -> Response:
        """Send exactly these headers; connection failures become GatewayUnavailable.

        Used by :meth:`request` and directly by tests that re-send captured headers.
        """
        try:
            async with self.session.request(method, url, data=body, headers=headers) as resp:
                data = await _read_bounded(resp)
                return Response(resp.status, dict(resp.headers), data)
        except CONNECTION_ERRORS as exc:
            raise unavailable(self.base, exc) from exc

    # --- the protocol -----------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        json_body: Any = None,
    ) -> Any:
        """A signed JSON request; returns the parsed answer (``None`` for an empty one)."""
        url = self.url(path, query)
        body = b""
        headers: dict[str, str] = {}
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        headers.update(self.sign(method, url, content_digest(body)))
        resp = await self.send(method, url, headers=headers, body=body)
        raise_for_problem(resp.status, _content_type(resp.headers), resp.body)
        if not resp.body:
            return None
        return resp.json()

    async def upload(
        self,
        method: str,
        path: str,
        source: Path,
        size: int,
        digest: str,
        *,
        content_type: str = ENVELOPE_CONTENT_TYPE,
        progress: Progress | None = None,
    ) -> Response:
        """Stream ``source`` as the body (bounded memory); ``digest`` from a first pass."""
        url = self.url(path)
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(size),
            **self.sign(method, url, digest),
        }
        chunks = _file_chunks(source, size, progress)
        resp = await self.send(method, url, headers=headers, body=chunks)
        raise_for_problem(resp.status, _content_type(resp.headers), resp.body)
        return resp

    async def download(self, path: str, out: BinaryIO, *, progress: Progress | None = None) -> int:
        """Stream a signed GET's body into ``out``; returns the byte count."""
        url = self.url(path)
        headers = self.sign("GET", url)
        try:
            async with self.session.get(url, headers=headers) as resp:
                if resp.status >= 400:
                    raise_for_problem(resp.status, resp.content_type, await _read_bounded(resp))
                total = resp.content_length or 0
                done = 0
                async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, max(total, done))
                return done
        except CONNECTION_ERRORS as exc:
            raise unavailable(self.base, exc) from exc

    async def websocket(
        self, path: str, query: Mapping[str, str | int] | None = None
    ) -> aiohttp.ClientWebSocketResponse:
        """Open a signed WebSocket (the upgrade GET is signed like any other request)."""
        url = self.url(path, query)
        try:
            return await self.session.ws_connect(url, headers=self.sign("GET", url), heartbeat=30)
        except aiohttp.WSServerHandshakeError as exc:
            # aiohttp drops the refusal's body: the status is all that is left.
            raise UnexpectedResponse(
                f"the gateway refused the event stream (HTTP {exc.status})", status=exc.status
            ) from None
        except CONNECTION_ERRORS as exc:
            raise unavailable(self.base, exc) from exc


def _content_type(headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return ""


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    data = bytearray()
    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
        data += chunk
        if len(data) > MAX_JSON_BYTES:
            raise UnexpectedResponse("the gateway's answer is too large", status=resp.status)
    return bytes(data)


async def _file_chunks(source: Path, size: int, progress: Progress | None) -> AsyncIterator[bytes]:
    done = 0
    handle = await asyncio.to_thread(source.open, "rb")
    with handle:
        while True:
            chunk = await asyncio.to_thread(handle.read, CHUNK_BYTES)
            if not chunk:
                break
            done += len(chunk)
            if progress is not None:
                progress(done, size)
            yield chunk

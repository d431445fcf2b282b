"""Message handlers: parse, call one service function, serialise. No SQL, no crypto."""

from __future__ import annotations

import asyncio
import time
from typing import BinaryIO

from aiohttp import web

from gateway.appkeys import BLOBS, DIRECTORY, SESSIONMAKER, SETTINGS
from gateway.auth import STREAM_CONTENT_TYPE, caller_of, verified_body
from gateway.blobs import READ_CHUNK
from gateway.blobstore import Blobs, PgBlobReader
from gateway.observability.metrics import handover_observer
from gateway.services import handover, message_access, messages
from gateway.transport import require_whole_blob
from gateway.views.jsonbody import query_int, read_json
from gateway.views.path_ids import message_id_of
from keys.protocol.problems import UnsupportedMediaType
from keys.protocol.receipt import FIELDS as RECEIPT_FIELDS

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def _blobs(request: web.Request) -> Blobs:
    return request.app[BLOBS]


def _now() -> int:
    return int(time.time())


async def put_message(request: web.Request) -> web.Response:
    message_id = message_id_of(request)  # before the body streams in
    if request.content_type != STREAM_CONTENT_TYPE:
        raise UnsupportedMediaType(f"expected Content-Type: {STREAM_CONTENT_TYPE}")
    result = await messages.send_message(
        request.app[SESSIONMAKER],
        caller_of(request),
        message_id,
        verified_body(request),
        directory=request.app[DIRECTORY].directory,
        settings=request.app[SETTINGS],
        blobs=_blobs(request),
        now=_now(),
        clock=_now,  # decide when the body has arrived (it may stream for a long time)
        directories=request.app[DIRECTORY],  # and authorise at commit
    )
    return web.json_response(result.body, status=result.status)


def _limit(request: web.Request) -> int:
    return query_int(request, "limit", default=DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)


async def get_inbox(request: web.Request) -> web.Response:
    page = await message_access.inbox(
        request.app[SESSIONMAKER],
        caller_of(request),
        directory=request.app[DIRECTORY].directory,
        after=request.query.get("after"),
        limit=_limit(request),
        now=_now(),
    )
    return web.json_response(page)


async def get_outbox(request: web.Request) -> web.Response:
    page = await message_access.outbox(
        request.app[SESSIONMAKER],
        caller_of(request),
        directory=request.app[DIRECTORY].directory,
        after=request.query.get("after"),
        limit=_limit(request),
    )
    return web.json_response(page)


async def get_message(request: web.Request) -> web.Response:
    body = await message_access.status(
        request.app[SESSIONMAKER],
        caller_of(request),
        message_id_of(request),
        directory=request.app[DIRECTORY].directory,
    )
    return web.json_response(body)


async def get_envelope(request: web.Request) -> web.StreamResponse:
    opened = await handover.open_for_recipient(
        request.app[SESSIONMAKER],
        caller_of(request),
        message_id_of(request),
        directory=request.app[DIRECTORY].directory,
        blobs=_blobs(request),
        now=_now(),
        directories=request.app[DIRECTORY],
    )
    require_whole_blob(opened.handle, opened.size, message_id_of(request))
    response = web.StreamResponse(
        headers={"Content-Type": STREAM_CONTENT_TYPE, "Content-Length": str(opened.size)}
    )
    try:
        await response.prepare(request)
    except BaseException:
        opened.handle.close()
        raise
    await stream_blob(opened.handle, response)
    await response.write_eof()
    return response


async def post_receipt(request: web.Request) -> web.Response:
    message_id = message_id_of(request)
    raw = await read_json(request, required=RECEIPT_FIELDS)
    now = _now()
    body = await handover.post_receipt(
        request.app[SESSIONMAKER],
        caller_of(request),
        message_id,
        raw,
        directory=request.app[DIRECTORY].directory,
        blobs=_blobs(request),
        now=now,
        directories=request.app[DIRECTORY],
        on_handed_over=handover_observer(request.app),
    )
    return web.json_response(body)


async def get_receipt(request: web.Request) -> web.Response:
    body = await message_access.get_receipt(
        request.app[SESSIONMAKER], caller_of(request), message_id_of(request)
    )
    return web.json_response(body)


async def post_recall(request: web.Request) -> web.Response:
    body = await message_access.recall(
        request.app[SESSIONMAKER],
        caller_of(request),
        message_id_of(request),
        directory=request.app[DIRECTORY].directory,
        blobs=_blobs(request),
        now=_now(),
    )
    return web.json_response(body)


async def stream_blob(handle: BinaryIO | PgBlobReader, response: web.StreamResponse) -> None:
    """Write an open blob to a prepared response, one chunk at a time (the blob store
    opens the file or the PostgreSQL reader; the HTTP side of streaming is the view's)."""
    if isinstance(handle, PgBlobReader):
        try:
            async for piece in handle.read_chunks():
                await response.write(piece)
        finally:
            await handle.aclose()
        return
    with handle:
        while True:
            chunk = await asyncio.to_thread(handle.read, READ_CHUNK)
            if not chunk:
                break
            await response.write(chunk)

"""Typed keys for what the application and each request carry (no string keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from gateway.blobstore import Blobs
    from gateway.caller import Caller
    from gateway.db.engine import SessionMaker
    from gateway.identity import GatewayIdentity
    from gateway.push.notifier import Notifier
    from gateway.push.sockets import PushHub
    from gateway.ratelimit import RateLimiter
    from gateway.services.directory import DirectoryService
    from gateway.settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
SESSIONMAKER: web.AppKey[SessionMaker] = web.AppKey("sessionmaker")
IDENTITY: web.AppKey[GatewayIdentity] = web.AppKey("identity")
# GET /v1/gateway/key's answer, built at the first request (gateway.views.directory).
GATEWAY_KEY_ANSWER: web.AppKey[dict[str, Any]] = web.AppKey("gateway_key_answer")
# The envelope store (gateway.blobstore): set with the engine, in app._database.
BLOBS: web.AppKey[Blobs] = web.AppKey("blobs")
DIRECTORY: web.AppKey[DirectoryService] = web.AppKey("directory")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
# Wakes push sockets when this instance committed new events (gateway.push.notifier).
NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier")
# Open push sockets of this instance (closed on shutdown; limited per device).
PUSH_HUB: web.AppKey[PushHub] = web.AppKey("push_hub")

# Per request. Handlers use gateway.auth.caller_of(request) rather than these.
CALLER_KEY: web.RequestKey[Caller] = web.RequestKey("caller")
REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("request_id")
# The problem code a refusal answered with (metrics and the access log count by it).
PROBLEM_CODE_KEY: web.RequestKey[str] = web.RequestKey("problem_code")
# Set once the signature verified: the kid may be audited from then on.
VERIFIED_KID_KEY: web.RequestKey[str] = web.RequestKey("verified_kid")
CONTENT_DIGEST_KEY: web.RequestKey[str] = web.RequestKey("content_digest")
STREAMED_KEY: web.RequestKey[bool] = web.RequestKey("streamed")

"""The application factory: wiring only (settings, engine, key, directory, jobs)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.appkeys import (
    BLOBS,
    DIRECTORY,
    GATEWAY_KEY_ANSWER,
    IDENTITY,
    NOTIFIER,
    RATE_LIMITER,
    SESSIONMAKER,
    SETTINGS,
)
from gateway.auth import auth_middleware
from gateway.blobstore import make_blob_store
from gateway.db.engine import make_sessionmaker, open_engine
from gateway.identity import GatewayIdentity, load_identity
from gateway.jobs.scheduler import scheduler_context
from gateway.middlewares import add_security_headers, limits_middleware, problem_middleware
from gateway.observability.middleware import observe_middleware, setup_observability
from gateway.push.notifier import Notifier, attach
from gateway.push.sockets import setup_push
from gateway.ratelimit import RateLimiter
from gateway.recovery import recover_uploads
from gateway.routes import setup_routes
from gateway.services.directory import DirectoryService
from gateway.settings import Settings

log = logging.getLogger("gateway")


def create_app(settings: Settings, identity: GatewayIdentity | None = None) -> web.Application:
    """Build the app. ``identity`` defaults to the key in ``settings.data_dir`` (loaded now,
    so a wrong passphrase fails at start-up, not at the first checkpoint)."""
    app = web.Application(
        # Outermost first: errors of every later layer become problem+json.
        middlewares=[observe_middleware, problem_middleware, limits_middleware, auth_middleware],
        client_max_size=settings.max_json_bytes,
    )
    app[SETTINGS] = settings
    gateway_identity = identity or load_identity(settings)
    app[IDENTITY] = gateway_identity
    app[GATEWAY_KEY_ANSWER] = {}
    app[DIRECTORY] = DirectoryService(gateway_identity.pinned_admins)
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    app[NOTIFIER] = Notifier()
    setup_observability(app)  # request ids, access log, /metrics, per-address limit
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(recover_uploads)  # before serving: interrupted uploads resolved
    app.cleanup_ctx.append(scheduler_context)  # gateway.jobs.expiry via APScheduler
    setup_push(app)  # after _database: its poll task needs the session maker
    app.on_response_prepare.append(add_security_headers)
    setup_routes(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Open the engine for the app's lifetime and dispose of it on shutdown."""
    engine = open_engine(app[SETTINGS].db_url)
    app[SESSIONMAKER] = make_sessionmaker(engine)
    app[BLOBS] = make_blob_store(app[SETTINGS], engine, app[SESSIONMAKER])
    # Commits that emitted events on this engine wake this app's push sockets; the
    # request path's units of work hand them the events themselves.
    attach(engine, app[NOTIFIER])
    app[SESSIONMAKER].units.publisher = app[NOTIFIER].publish
    try:
        yield
    finally:
        await app[BLOBS].aclose()
        await engine.dispose()

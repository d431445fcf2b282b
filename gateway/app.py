"""The application factory: wiring only (settings, engine, key, directory, jobs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway import audit
from gateway.appkeys import DIRECTORY, IDENTITY, RATE_LIMITER, SESSIONMAKER, SETTINGS
from gateway.auth import auth_middleware
from gateway.db import nonce_store
from gateway.db.engine import SessionMaker, make_sessionmaker, open_engine
from gateway.identity import GatewayIdentity, load_identity
from gateway.middlewares import add_security_headers, limits_middleware, problem_middleware
from gateway.ratelimit import RateLimiter
from gateway.routes import setup_routes
from gateway.services.directory import DirectoryService
from gateway.settings import Settings

log = logging.getLogger("gateway")


def create_app(settings: Settings, identity: GatewayIdentity | None = None) -> web.Application:
    """Build the app. ``identity`` defaults to the key in ``settings.data_dir`` (loaded now,
    so a wrong passphrase fails at start-up, not at the first checkpoint)."""
    app = web.Application(
        # Outermost first: errors of every later layer become problem+json.
        middlewares=[problem_middleware, limits_middleware, auth_middleware],
        client_max_size=settings.max_json_bytes,
    )
    app[SETTINGS] = settings
    gateway_identity = identity or load_identity(settings)
    app[IDENTITY] = gateway_identity
    app[DIRECTORY] = DirectoryService(gateway_identity.pinned_admins)
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_periodic_jobs)
    app.on_response_prepare.append(add_security_headers)
    setup_routes(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Open the engine for the app's lifetime and dispose of it on shutdown."""
    engine = open_engine(app[SETTINGS].db_url)
    app[SESSIONMAKER] = make_sessionmaker(engine)
    try:
        yield
    finally:
        await engine.dispose()


async def purge_nonces(sessionmaker: SessionMaker, settings: Settings, now: int) -> int:
    """Forget nonces older than the clock-skew window (they can no longer be replayed)."""
    async with sessionmaker.begin() as session:
        return await nonce_store.purge_nonces(session, now - settings.clock_skew_s - 60)


async def sign_audit_checkpoint(
    sessionmaker: SessionMaker, identity: GatewayIdentity, now: int
) -> None:
    async with sessionmaker.begin() as session:
        await audit.sign_checkpoint(session, identity.kid, identity.signing_key, now=now)


async def _every(interval_s: int, name: str, job: Callable[[], Awaitable[object]]) -> None:
    # Each run catches and logs its own error, so one failure does not stop the loop.
    while True:
        await asyncio.sleep(interval_s)
        try:
            await job()
        except Exception:
            log.exception("periodic job %s failed", name)


async def _periodic_jobs(app: web.Application) -> AsyncIterator[None]:
    settings, sessionmaker, identity = app[SETTINGS], app[SESSIONMAKER], app[IDENTITY]
    tasks: list[asyncio.Task[None]] = []
    if settings.nonce_purge_interval_s > 0:
        tasks.append(
            asyncio.create_task(
                _every(
                    settings.nonce_purge_interval_s,
                    "purge_nonces",
                    lambda: purge_nonces(sessionmaker, settings, int(time.time())),
                )
            )
        )
    if settings.audit_checkpoint_interval_s > 0:
        tasks.append(
            asyncio.create_task(
                _every(
                    settings.audit_checkpoint_interval_s,
                    "sign_audit_checkpoint",
                    lambda: sign_audit_checkpoint(sessionmaker, identity, int(time.time())),
                )
            )
        )
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

"""Every route of the gateway, in one place. Add yours here (one line each)."""

from __future__ import annotations

from aiohttp import web

from gateway.views import audit, directory, health


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    # Everything under /v1/ is authenticated by gateway.auth.auth_middleware.
    app.router.add_get("/v1/directory/entries", directory.get_entries)
    app.router.add_post("/v1/directory/entries", directory.post_entries)
    app.router.add_get("/v1/directory/checkpoint", directory.get_checkpoint)
    app.router.add_get("/v1/gateway/key", directory.get_gateway_key)
    app.router.add_get("/v1/audit/entries", audit.get_entries)
    app.router.add_get("/v1/audit/checkpoint", audit.get_checkpoint)

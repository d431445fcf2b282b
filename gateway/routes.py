"""Every route of the gateway, in one place. Add yours here (one line each)."""

from __future__ import annotations

from aiohttp import web

from gateway.views import (
    audit,
    consents,
    directory,
    events,
    health,
    messages,
    openapi,
    report,
    webhooks,
)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/openapi.json", openapi.get_openapi)  # unauthenticated: public contract
    # Everything under /v1/ is authenticated by gateway.auth.auth_middleware.
    app.router.add_get("/v1/directory/entries", directory.get_entries)
    app.router.add_post("/v1/directory/entries", directory.post_entries)
    app.router.add_get("/v1/directory/checkpoint", directory.get_checkpoint)
    app.router.add_get("/v1/gateway/key", directory.get_gateway_key)
    app.router.add_get("/v1/audit/entries", audit.get_entries)
    app.router.add_get("/v1/audit/checkpoint", audit.get_checkpoint)
    app.router.add_get("/v1/events", events.get_events)  # WebSocket upgrade
    app.router.add_post("/v1/consents", consents.post_consent)
    app.router.add_get("/v1/consents", consents.get_consents)
    app.router.add_get("/v1/consents/{consent_id}", consents.get_consent)
    app.router.add_post("/v1/consents/{consent_id}/withdraw", consents.post_withdraw)
    app.router.add_put("/v1/messages/{message_id}", messages.put_message)
    app.router.add_get("/v1/messages/{message_id}", messages.get_message)
    app.router.add_get("/v1/messages/{message_id}/envelope", messages.get_envelope)
    app.router.add_post("/v1/messages/{message_id}/receipt", messages.post_receipt)
    app.router.add_get("/v1/messages/{message_id}/receipt", messages.get_receipt)
    app.router.add_post("/v1/messages/{message_id}/recall", messages.post_recall)
    app.router.add_get("/v1/inbox", messages.get_inbox)
    app.router.add_get("/v1/outbox", messages.get_outbox)
    app.router.add_get("/v1/admin/report", report.get_report)
    app.router.add_post("/v1/webhooks", webhooks.post_webhook)
    app.router.add_get("/v1/webhooks", webhooks.get_webhooks)
    app.router.add_delete("/v1/webhooks/{webhook_id}", webhooks.delete_webhook)
    app.router.add_get("/v1/webhooks/{webhook_id}/deliveries", webhooks.get_deliveries)

"""GET /v1/admin/report?month=YYYY-MM | ?year=YYYY [&format=csv|json]: security admins only."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.appkeys import SESSIONMAKER
from gateway.auth import caller_of, require_admin
from gateway.services.followup import FORMATS, follow_up_report, period_of
from keys.protocol.problems import FieldInvalid


async def get_report(request: web.Request) -> web.Response:
    caller = caller_of(request)
    # Admin-only: even de-identified figures are for the follow-up, not for every device.
    require_admin(caller)
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise FieldInvalid("format must be csv or json")
    try:
        period = period_of(request.query.get("month"), request.query.get("year"))
    except ValueError:
        raise FieldInvalid("give either month=YYYY-MM or year=YYYY") from None
    report = await follow_up_report(
        request.app[SESSIONMAKER], period, fmt=fmt, who=str(caller.kid), now=int(time.time())
    )
    return web.Response(text=report.text, content_type=report.content_type, charset="utf-8")

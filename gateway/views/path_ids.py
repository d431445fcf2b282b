"""Ids in URL paths, checked once before any handler uses them.

Message and consent ids are lower-case UUIDs (``schemas/envelope-header.json``,
``schemas/consent-record.json``). Anything else cannot name a stored row, so it is
refused here with ``field_invalid`` (400) before a query is built. Threat: input the
database driver itself refuses — a NUL byte in a PostgreSQL text parameter, a string
longer than the column — surfacing as a 500 with a traceback in the log (and a probe
that tells the store apart). ``fullmatch``: with ``match``, ``$`` also accepts a
trailing newline.
"""

from __future__ import annotations

import re

from aiohttp import web

from keys.protocol.problems import FieldInvalid

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def path_uuid(request: web.Request, name: str) -> str:
    """The path parameter ``name`` if it is a lower-case UUID; else ``field_invalid``."""
    value = request.match_info[name]
    if not _UUID.fullmatch(value):
        # The value itself is not echoed: it is caller input of any length and content.
        raise FieldInvalid(f"{name} in the path must be a lower-case UUID")
    return value


def message_id_of(request: web.Request) -> str:
    return path_uuid(request, "message_id")


def consent_id_of(request: web.Request) -> str:
    return path_uuid(request, "consent_id")

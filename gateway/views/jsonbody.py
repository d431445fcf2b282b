"""Reading JSON request bodies strictly."""

from __future__ import annotations

import json
import re
from collections.abc import Set
from typing import Any

from aiohttp import web

from keys.protocol.problems import (
    FieldInvalid,
    FieldMissing,
    JsonInvalid,
    UnknownField,
    UnsupportedMediaType,
)

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Threat: parser differentials. {"a":1,"a":2} means different things to different
    # parsers; a signer and the gateway must never disagree on what was sent.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise JsonInvalid("duplicate field in JSON object")
        obj[key] = value
    return obj


def _no_constant(_name: str) -> Any:
    raise JsonInvalid("NaN and Infinity are not JSON")


async def read_json(
    request: web.Request, *, required: Set[str], optional: Set[str] = frozenset()
) -> dict[str, Any]:
    """The body as a JSON object with exactly the allowed fields (unknown → refused)."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("expected Content-Type: application/json")
    raw = await request.read()  # bounded by client_max_size = max_json_bytes
    try:
        body = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise JsonInvalid() from None
    except RecursionError:
        # Threat: a small body nested 100 000 deep ('[[[[…') exhausts the parser's
        # recursion limit; a stable refusal, not a 500 with a traceback per request.
        raise JsonInvalid("the JSON is nested too deeply") from None
    if not isinstance(body, dict):
        raise JsonInvalid("the body must be a JSON object")
    unknown = set(body) - set(required) - set(optional)
    if unknown:
        name = min(unknown)
        # Echo the field name only when it looks like one: never reflect arbitrary input.
        shown = f": {name}" if _FIELD_NAME.fullmatch(name) else ""
        raise UnknownField(f"unknown field{shown}")
    missing = set(required) - set(body)
    if missing:
        raise FieldMissing(f"missing field: {min(missing)}")
    return body


def query_int(request: web.Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds (``field_invalid`` otherwise)."""
    text = request.query.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,16}", text):
        raise FieldInvalid(f"{name} must be an integer")
    value = int(text)
    if not minimum <= value <= maximum:
        raise FieldInvalid(f"{name} must be between {minimum} and {maximum}")
    return value

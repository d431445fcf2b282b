"""Checking the shape of the gateway's JSON answers (a wrong shape is not our protocol)."""

from __future__ import annotations

from typing import Any

from clients.errors import UnexpectedResponse


def seg(value: str) -> str:
    """A path segment: ids are UUIDs; anything else must not smuggle a path or query."""
    if not value or any(not (c.isalnum() or c in "-._:") for c in value):
        raise ValueError("an id must be a plain path segment")
    return value


def as_object(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise UnexpectedResponse("expected a JSON object from the gateway")
    return answer


def field(answer: Any, name: str) -> Any:
    obj = as_object(answer)
    if name not in obj:
        raise UnexpectedResponse(f"the gateway's answer lacks {name}")
    return obj[name]


def as_list(answer: Any, name: str) -> list[dict[str, Any]]:
    value = field(answer, name)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise UnexpectedResponse(f"{name} is not a list of objects")
    return value

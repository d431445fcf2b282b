"""Labels of the controlled vocabulary (``schemas/vocabulary.json``) for the pages.

Read from the package data directly (the gateway's loader is the gateway's; the web
app never imports ``gateway``). Codes go on the wire; people see the labels.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

GROUPS = ("categories", "purposes", "withdrawal_reasons", "rejection_reasons", "unit_kinds")


@cache
def _vocabulary() -> dict[str, Any]:
    raw = resources.files("schemas").joinpath("vocabulary.json").read_text("utf-8")
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("vocabulary.json is not an object")
    return value


def terms(group: str) -> list[str]:
    value = _vocabulary().get(group, {})
    return list(value) if isinstance(value, dict) else []


def label(group: str, term: str, language: str) -> str:
    """The label in ``language`` (Swedish when missing); an unknown code is shown as is."""
    entry = _vocabulary().get(group, {}).get(term)
    if not isinstance(entry, dict):
        return term
    return str(entry.get(language) or entry.get("sv") or term)


def choices(group: str, language: str) -> list[tuple[str, str]]:
    return [(term, label(group, term, language)) for term in terms(group)]

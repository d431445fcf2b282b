"""GET /openapi.json — the OpenAPI 3.1 document of this gateway (unauthenticated).

``schemas/openapi.json`` refers to the wire-contract JSON Schemas next to it by
relative ``$ref`` (``consent-record.json``, ``audit-entry.json#/$defs/checkpoint``), so
one schema file stays the single source of truth. Served over HTTP those refs would
point at URLs the gateway does not serve, so the document is *bundled* once at first
use: every referenced schema file is embedded under ``components/schemas`` (keeping its
own ``$id``, so its internal ``#/$defs/...`` refs still resolve inside it, as JSON
Schema 2020-12 specifies) and each ref is rewritten to point there.

The document describes only public protocol facts; serving it unauthenticated reveals
nothing a client does not already ship with.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

_FILE_REF = re.compile(r"^([a-z][a-z0-9-]*)\.json(#.*)?$")


# A filesystem path, as keys.protocol.vocabulary does: importlib.resources refuses
# packages whose __path__ holds an editable-install hook (see gateway/migrations).
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def _load(name: str) -> Any:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def _component_name(stem: str) -> str:
    # "consent-record" -> "ConsentRecord": distinct from the document's own components.
    return "".join(part.capitalize() for part in stem.split("-"))


def _rebase(node: Any, base: str) -> None:
    """Rewrite a schema's document-local refs (``#/...``) to point below ``base``."""
    if isinstance(node, dict):
        target = node.get("$ref")
        if isinstance(target, str) and target.startswith("#"):
            node["$ref"] = base + target.removeprefix("#")
        for value in node.values():
            _rebase(value, base)
    elif isinstance(node, list):
        for value in node:
            _rebase(value, base)


def _embeddable(name: str, schema: Any) -> Any:
    if not isinstance(schema, dict):
        raise RuntimeError(f"schema {name} is not a JSON object")
    schema = {k: v for k, v in schema.items() if k not in ("$id", "$schema")}
    _rebase(schema, f"#/components/schemas/{name}")
    return schema


def bundle(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with every ``<file>.json[#frag]`` ref embedded under components/schemas."""
    out = copy.deepcopy(doc)
    embedded: dict[str, Any] = {}

    def rewrite(node: Any) -> None:
        if isinstance(node, dict):
            target = node.get("$ref")
            match = _FILE_REF.match(target) if isinstance(target, str) else None
            if match is not None:
                stem, fragment = match.group(1), match.group(2) or ""
                name = _component_name(stem)
                if name not in embedded:
                    embedded[name] = _embeddable(name, _load(f"{stem}.json"))
                node["$ref"] = f"#/components/schemas/{name}{fragment.removeprefix('#')}"
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(out)
    schemas = out.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in embedded.items():
        if name in schemas:
            raise RuntimeError(f"schema component {name} is defined twice")
        schemas[name] = schema
    return out


@cache
def served_document() -> bytes:
    """The bundled document as served (built once per process)."""
    doc = bundle(_load("openapi.json"))
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def get_openapi(_request: web.Request) -> web.Response:
    return web.Response(body=served_document(), content_type="application/json")

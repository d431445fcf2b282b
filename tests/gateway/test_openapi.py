"""The OpenAPI document: valid, served, and unable to drift from the handlers.

- ``schemas/openapi.json`` (relative refs to the schemas next to it) and the bundled
  document ``GET /openapi.json`` serves are both valid OpenAPI 3.1;
- the (method, path) pairs it documents are exactly the routes the app registers, so
  a new handler without documentation (or a stale entry) fails here;
- every error ``code`` it lists exists in ``keys.protocol.problems.ERRORS`` and is listed under
  the HTTP status the registry gives it, so a client reading the document gets the
  status and code the middleware really renders.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from gateway.views.openapi import bundle
from keys.protocol.problems import ERRORS, status_for_code
from tests.support.gateway import RunningGateway

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
DOC_PATH = SCHEMAS / "openapi.json"
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def load_doc() -> dict[str, Any]:
    doc = json.loads(DOC_PATH.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def problem_codes(response: dict[str, Any]) -> list[str]:
    """The ``code`` enum of a problem+json response (empty for other responses)."""
    schema = response.get("content", {}).get("application/problem+json", {}).get("schema")
    if schema is None:
        return []
    enums = [
        part["properties"]["code"]["enum"]
        for part in schema.get("allOf", [])
        if "code" in part.get("properties", {})
    ]
    assert len(enums) == 1, "a problem response lists its codes in exactly one enum"
    codes = enums[0]
    assert isinstance(codes, list)
    return [str(c) for c in codes]


def test_file_is_valid_openapi_31() -> None:
    doc = load_doc()
    assert doc["openapi"].startswith("3.1.")
    # base_uri: the relative refs (consent-record.json, ...) resolve to schemas/ on disk.
    validate(doc, base_uri=DOC_PATH.as_uri())


def test_bundled_document_is_valid_and_self_contained() -> None:
    doc = bundle(load_doc())
    validate(doc)
    text = json.dumps(doc)
    assert ".json#" not in text
    assert '.json"' not in text.replace('"/openapi.json"', "")
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)  # each component is a valid 2020-12 schema
        assert "$id" not in schema, name


def test_documented_routes_equal_registered_routes(gateway: RunningGateway) -> None:
    registered = {
        (route.method, route.resource.canonical)
        for route in gateway.app.router.routes()
        # aiohttp adds HEAD beside every GET (allow_head); not part of the contract.
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(method, path) for method, path, _ in operations(load_doc())}
    assert documented == registered, {
        "undocumented": sorted(registered - documented),
        "not registered": sorted(documented - registered),
    }


def test_every_code_exists_with_the_documented_status() -> None:
    seen: set[str] = set()
    for method, path, operation in operations(load_doc()):
        for status, response in operation["responses"].items():
            for code in problem_codes(response):
                assert code in ERRORS, f"{method} {path}: unknown code {code}"
                assert status_for_code(code) == int(status), f"{method} {path}: {code}"
                seen.add(code)
    # The document really lists codes (a parser change must not make this vacuous).
    assert {"consent_withdrawn", "replayed", "message_id_conflict"} <= seen


def test_every_v1_operation_requires_a_signature_and_lists_auth_failures() -> None:
    for method, path, operation in operations(load_doc()):
        if not path.startswith("/v1/"):
            assert operation["security"] == [], f"{method} {path} is public"
            continue
        assert operation["security"] == [{"httpSignature": []}], f"{method} {path}"
        listed = problem_codes(operation["responses"]["401"])
        assert {"signature_invalid", "replayed"} <= set(listed)
        assert "device_revoked" in problem_codes(operation["responses"]["403"])


def test_problem_schema_matches_what_the_registry_renders() -> None:
    from keys.protocol.problems import problem_body

    doc = bundle(load_doc())
    schema = doc["components"]["schemas"]["Problem"]
    Draft202012Validator(schema).validate(problem_body("consent_withdrawn"))


@pytest.mark.asyncio
async def test_served_unauthenticated_and_bundled(gateway: RunningGateway) -> None:
    async with gateway.http.get(gateway.url / "openapi.json") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        served = await resp.json()
    assert served == bundle(load_doc())
    validate(served)

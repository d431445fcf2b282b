"""schemathesis against the OpenAPI document the gateway serves, signed as a real device.

A real gateway (the harness's app on 127.0.0.1:0, SQLite, a seeded directory, one
consent and one message) runs on an event loop of its own in a background thread;
schemathesis loads ``GET /openapi.json`` from it and, for every operation, generates
requests that fit the schema and requests that do not. Each request is signed with
the SDK's RFC 9421 signer (``clients.sdk.transport.Signer`` and
``keys.protocol.httpsig``) as the device ``so-nordost/anna/1``, over the bytes and the
path as they are sent, so the fuzzing reaches the handlers rather than stopping at
``signature_invalid``.

Checks on every answer: no 5xx, the status is one the document lists for the
operation, and the body and Content-Type conform to it. Bounded in CI (a few examples
per operation); ``STAFETT_FUZZ_EXAMPLES=500`` (and ``STAFETT_FUZZ_SECONDS``) for a
longer run on demand.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clients.sdk.transport import Signer
from keys.protocol.httpsig import content_digest, new_nonce, sign_request
from tests.support.gateway import RunningGateway, start_gateway, stop_gateway
from tests.support.sdk import ANNA, client, message_args, record_consent

EXAMPLES = int(os.environ.get("STAFETT_FUZZ_EXAMPLES", "6"))
# A budget for the whole module: once spent, the remaining examples of an operation
# are skipped (the operations still each get their first examples).
SECONDS = float(os.environ.get("STAFETT_FUZZ_SECONDS", "90"))
# /v1/events upgrades to a WebSocket (101); schemathesis speaks plain HTTP only.
EXCLUDED = ["/v1/events"]
# The directory entry schema picks each entry type's body with if/then, which
# schemathesis cannot generate from: arbitrary JSON (an {"entries": [...]} often) instead.
FREE_JSON_BODY = {("POST", "/v1/directory/entries")}
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
json_bodies = _json | st.fixed_dictionaries({"entries": st.lists(_json, max_size=3)})
DOC_PATH = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"


# The envelope goes up as raw bytes (the server refuses what is not an envelope).
schemathesis.serializer.alias("application/vnd.stafett.envelope", "application/octet-stream")


class SignedAuth(requests.auth.AuthBase):
    """Signs the prepared request (final path, query and body bytes) as ``signer``."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        assert isinstance(body, bytes), "a streamed body cannot be signed up front"
        url = urlsplit(r.url or "")
        r.headers.update(
            sign_request(
                self.signer.key,
                self.signer.kid,
                method=r.method or "GET",
                path=url.path,
                query=url.query,
                content_digest=content_digest(body),
                created=int(time.time()),
                nonce=new_nonce(),
            )
        )
        return r


class GatewayThread:
    """The gateway's event loop, running in a thread while the sync tests call it."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        url = f"sqlite+aiosqlite:///{data_dir / 'gateway.sqlite3'}"
        self.gw: RunningGateway = self.run(start_gateway(data_dir, url))
        self.run(self._seed())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _seed(self) -> None:
        # Real rows for the handlers to find (a consent, a pending message).
        async with client(self.gw, ANNA) as anna:
            consent_id = await record_consent(anna)
            await anna.send(**message_args(consent_id))

    def close(self) -> None:
        self.run(stop_gateway(self.gw))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    gateway = GatewayThread(tmp_path_factory.mktemp("fuzz-gateway"))
    try:
        yield gateway
    finally:
        gateway.close()


@pytest.fixture(scope="module")
def api(served: GatewayThread) -> schemathesis.BaseSchema:
    # The document as served (bundled, refs inlined), from the gateway under test.
    return schemathesis.openapi.from_url(f"{served.gw.url}/openapi.json")


@pytest.fixture(scope="module")
def session(served: GatewayThread) -> Iterator[requests.Session]:
    pair = served.gw.devices[ANNA]
    with requests.Session() as http:
        http.auth = SignedAuth(Signer(str(pair.kid), pair.signing_key))
        yield http


def documented_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of the document in the repository; each is looked up in the
    served one (the served document is the bundle of this file)."""
    doc = json.loads(DOC_PATH.read_text(encoding="utf-8"))
    return [
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete"} and path not in EXCLUDED
    ]


_started = time.monotonic()


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), documented_operations())
def test_every_operation_answers_as_documented(
    method: str,
    path: str,
    api: schemathesis.BaseSchema,
    served: GatewayThread,
    session: requests.Session,
) -> None:
    operation = api[path][method]
    if (method, path) in FREE_JSON_BODY:
        cases = st.builds(
            lambda body: operation.Case(body=body, media_type="application/json"), json_bodies
        )
    else:
        cases = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: schemathesis.Case[Any]) -> None:
        if time.monotonic() - _started > SECONDS:
            return  # the module's budget is spent (see SECONDS)
        response = case.call(base_url=str(served.gw.url), session=session, timeout=30)
        assert response.status_code < 500, response.text
        if case.meta is not None and case.meta.generation.mode.is_positive and case.body is NOT_SET:
            # Path and query parameters the document allows must not be refused as
            # malformed: the schema is as strict as the server (a body's deeper rules,
            # signatures and hashes, cannot all be written as JSON Schema).
            assert response.status_code != 400, (case.path_parameters, case.query, response.text)
        case.validate_response(
            response,
            checks=[
                status_code_conformance,
                content_type_conformance,
                response_headers_conformance,
                response_schema_conformance,
            ],
        )

    answers_as_documented()

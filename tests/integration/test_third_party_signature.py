"""A client built on an independent RFC 9421 implementation (PyPI
``http-message-signatures``, not our code) is accepted by the gateway.

It signs with its own signature-base builder, its own Content-Digest and its own
structured-field serializer; only the profile in docs/protocol.md ("Request
signatures") is shared. It also covers ``@authority``, which our SDK does not: an
additional covered component is accepted.
"""

from __future__ import annotations

import datetime
import json
import secrets
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, algorithms
from http_message_signatures.resolvers import MappingKeyResolver
from multidict import CIMultiDict

from keys.crypto.keypairs import DeviceKeyPair, EncryptionPrivateKey, KeyId, SigningKey
from tests.support.gateway import RunningGateway

pytestmark = pytest.mark.asyncio
KID = "so-nordost/extern/1"


async def _enrol(gw: RunningGateway) -> Ed25519PrivateKey:
    """A device whose Ed25519 seed the third-party library holds as well."""
    seed = secrets.token_bytes(32)
    pair = DeviceKeyPair(KeyId.parse(KID), SigningKey(seed), EncryptionPrivateKey.generate())
    await gw.append(gw.builder.enrol(pair))
    return Ed25519PrivateKey.from_private_bytes(seed)


async def _request(
    gw: RunningGateway,
    key: Ed25519PrivateKey,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    covered: tuple[str, ...] = ("@method", "@path", "@query", "@authority"),
    extra_lines: tuple[tuple[str, str], ...] = (),
) -> tuple[int, Any]:
    url = f"{gw.url}{path}"
    message = SimpleNamespace(method=method, url=url, headers=CIMultiDict[str]())
    if body:
        message.headers["Content-Type"] = "application/json"
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={KID: key}),
    )
    signer.sign(
        message,
        key_id=KID,
        label="sig1",
        nonce=secrets.token_urlsafe(24),
        created=datetime.datetime.now(datetime.UTC),
        covered_component_ids=covered,
        body=body,  # the library adds its own Content-Digest and covers it
    )
    headers = CIMultiDict(message.headers)
    for name, value in extra_lines:  # a further field line of the same name
        headers.add(name, value)
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, data=body, headers=headers) as resp,
    ):
        raw = await resp.read()
        return resp.status, json.loads(raw) if raw else None


async def test_a_get_signed_by_a_third_party_library_is_accepted(
    gateway: RunningGateway,
) -> None:
    key = await _enrol(gateway)
    status, answer = await _request(gateway, key, "GET", "/v1/inbox?limit=5")
    assert status == 200, answer
    assert answer["messages"] == []


async def test_a_post_with_a_body_and_more_covered_components_is_accepted(
    gateway: RunningGateway,
) -> None:
    key = await _enrol(gateway)
    body = json.dumps({"reason": "subject_withdrew"}).encode()
    status, answer = await _request(
        gateway,
        key,
        "POST",
        "/v1/consents/00000000-0000-4000-8000-000000000000/withdraw",
        body,
        covered=("@method", "@path", "@query", "@authority", "content-type"),
    )
    # Authenticated (body digest and signature verified), then decided by the service:
    # that consent is unknown to the unit. An authentication failure would be a 401.
    assert status == 403, answer
    assert answer["code"] == "consent_unknown"


async def test_the_same_library_with_a_wrong_key_is_refused(gateway: RunningGateway) -> None:
    await _enrol(gateway)
    status, answer = await _request(gateway, Ed25519PrivateKey.generate(), "GET", "/v1/inbox")
    assert status == 401, answer
    assert answer["code"] == "signature_invalid"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        # Combined per RFC 9421 §2.1 the digest is not the one signed: refused, where
        # reading only the first line would have accepted it.
        (("Content-Digest", "sha-512=:AAAA:"), "signature_invalid"),
        # A second signature on a line of its own.
        (("Signature-Input", 'sig2=("@method");created=1;keyid="a/b/1"'), "signature_malformed"),
        # The same label again on a second line.
        (("Signature", "sig1=:AAAA:"), "signature_malformed"),
    ],
)
async def test_repeated_field_lines_are_combined_or_refused_never_cut(
    gateway: RunningGateway, line: tuple[str, str], code: str
) -> None:
    key = await _enrol(gateway)
    status, answer = await _request(gateway, key, "GET", "/v1/inbox", extra_lines=(line,))
    assert status in (400, 401), answer
    assert answer["code"] == code

"""What RFC 9421 allows beyond our own profile: more covered components, any single
label, ``tag``; and §2.1 on repeated field lines (combined, or refused — never the first
line alone)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_sfv.item import InnerList, Item

from keys.crypto.keypairs import SigningKey
from keys.errors import HttpSignatureMalformed, SignatureInvalid
from keys.protocol.httpsig import (
    _signature_base,
    combine_field_lines,
    content_digest,
    parse_request_signature,
    sign_request,
    verify_request_signature,
)
from tests.support.paths import REPO

KEY = SigningKey(bytes(range(32)))
KID = "so-nordost/anna/3"
NONCE = "bm9uY2Utbm9uY2UtMTIz"
BODY = b'{"hello": "world"}'
DIGEST = content_digest(BODY)
HOST = "gateway.example"
FIELDS = {"content-type": ["application/json"], "x-trace": ["a", " b "]}


def _signed(
    components: list[str], values: dict[str, str], *, label: str = "sig1", **extra: Any
) -> dict[str, str]:
    """Sign like a third party would: our base builder, their choice of components."""
    params = InnerList([Item(c) for c in components])
    params.params.update(
        {"created": 1_700_000_000, "nonce": NONCE, "keyid": KID, "alg": "ed25519", **extra}
    )
    base = _signature_base([(c, values[c]) for c in components], params)
    return {
        "Signature-Input": f"{label}={params}",
        "Signature": f"{label}=:{base64.b64encode(KEY.sign(base)).decode()}:",
    }


VALUES = {
    "@method": "POST",
    "@path": "/v1/consents",
    "@query": "?",
    "content-digest": DIGEST,
    "@authority": HOST,
    "@request-target": "/v1/consents",
    "content-type": "application/json",
    "x-trace": "a, b",  # two field lines, combined as §2.1 says
}
REQUIRED = ["@method", "@path", "@query", "content-digest"]


def _parse(headers: dict[str, Any], **changes: Any) -> Any:
    args: dict[str, Any] = {
        "signature_input": headers["Signature-Input"],
        "signature": headers["Signature"],
        "method": "POST",
        "path": "/v1/consents",
        "query": "",
        "content_digest": DIGEST,
        "field_lines": lambda name: FIELDS.get(name, []),
        "authority": HOST,
    }
    args.update(changes)
    return parse_request_signature(**args)


@pytest.mark.parametrize(
    "extra",
    [
        ["@authority"],
        ["content-type"],
        ["@request-target", "x-trace"],
        ["content-type", "@authority"],
    ],
)
def test_additional_covered_components_are_accepted_and_bound(extra: list[str]) -> None:
    headers = _signed([*extra, *REQUIRED], VALUES)
    verify_request_signature(_parse(headers), KEY.verify_key)
    # They are really covered: another value of an extra component breaks the signature.
    changed = {
        "authority": "evil.example",
        "field_lines": lambda name: (
            ["text/plain"] if name == "content-type" else FIELDS.get(name, [])
        ),
    }
    if "x-trace" in extra:
        changed["field_lines"] = lambda name: ["a"] if name == "x-trace" else FIELDS.get(name, [])
    elif "@request-target" in extra:
        changed = {"query": "x=1"}
    with pytest.raises((SignatureInvalid, HttpSignatureMalformed)):
        verify_request_signature(_parse(headers, **changed), KEY.verify_key)


def test_any_single_label_and_a_tag_are_accepted() -> None:
    headers = _signed(REQUIRED, VALUES, label="pyhms", tag="stafett")
    verify_request_signature(_parse(headers), KEY.verify_key)


@pytest.mark.parametrize(
    "components",
    [
        [*REQUIRED, "signature-input"],  # circular
        [*REQUIRED, "x-absent"],  # a covered field the request does not carry
        [*REQUIRED, "@target-uri"],  # a derived component we do not compute
        [*REQUIRED, "Content-Type"],  # field names are lower case
        ["@method", "@path", "content-digest", "@authority"],  # @query missing
    ],
)
def test_components_we_cannot_compute_or_missing_ones_are_refused(components: list[str]) -> None:
    values = {
        **VALUES,
        "signature-input": "x",
        "x-absent": "x",
        "@target-uri": "x",
        "Content-Type": "x",
    }
    with pytest.raises(HttpSignatureMalformed):
        _parse(_signed(components, values))


def test_authority_needs_the_host() -> None:
    with pytest.raises(HttpSignatureMalformed):
        _parse(_signed([*REQUIRED, "@authority"], VALUES), authority=None)


def test_repeated_field_lines_are_combined_not_cut_to_the_first() -> None:
    headers = _signed(REQUIRED, VALUES)
    # The signature dictionary split over two lines, the digest as two lines (sha-256
    # on the first, a bogus sha-512 on the second): combined, the digest value signed
    # is "first, second" — which is not what was signed, so the signature fails
    # rather than the second line being silently ignored.
    ok = _parse(
        headers, signature_input=[headers["Signature-Input"]], signature=[headers["Signature"]]
    )
    verify_request_signature(ok, KEY.verify_key)
    two_lines = _parse(headers, content_digest=[DIGEST, "sha-512=:AAAA:"])
    with pytest.raises(SignatureInvalid):
        verify_request_signature(two_lines, KEY.verify_key)
    # A signature that covers both lines, combined, verifies.
    both = {**VALUES, "content-digest": f"{DIGEST}, sha-512=:AAAA:"}
    headers = _signed(REQUIRED, both)
    verify_request_signature(
        _parse(headers, content_digest=[DIGEST, " sha-512=:AAAA: "]), KEY.verify_key
    )


def test_a_label_on_two_field_lines_is_refused() -> None:
    headers = _signed(REQUIRED, VALUES)
    with pytest.raises(HttpSignatureMalformed):
        _parse(headers, signature_input=[headers["Signature-Input"], headers["Signature-Input"]])
    with pytest.raises(HttpSignatureMalformed):
        _parse(headers, signature=[headers["Signature"], headers["Signature"]])


def test_a_second_signature_on_its_own_line_is_refused() -> None:
    headers = _signed(REQUIRED, VALUES)
    other = _signed(REQUIRED, VALUES, label="sig2")
    with pytest.raises(HttpSignatureMalformed):
        _parse(
            headers,
            signature_input=[headers["Signature-Input"], other["Signature-Input"]],
            signature=[headers["Signature"], other["Signature"]],
        )


def test_combine_field_lines() -> None:
    assert combine_field_lines(None) is None
    assert combine_field_lines([]) is None
    assert combine_field_lines(" a ") == "a"
    assert combine_field_lines([" a", "b ", "c"]) == "a, b, c"


VECTORS = json.loads((REPO / "schemas/vectors/request-signature-v1.json").read_text())


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_request_signature_vectors(case: dict[str, Any]) -> None:
    """The published vectors: our signer reproduces them, and an independent Ed25519
    (``cryptography``) verifies the published base and signature."""
    key = SigningKey(bytes.fromhex(VECTORS["seed_hex"]))
    assert key.verify_key.b64() == VECTORS["verify_key_b64"]
    digest = content_digest(case["body"].encode())
    assert digest == case["content_digest"]
    headers = sign_request(
        key,
        VECTORS["keyid"],
        method=case["method"],
        path=case["path"],
        query=case["query"],
        content_digest=digest,
        created=case["created"],
        nonce=case["nonce"],
    )
    assert headers["Signature-Input"] == case["signature_input"]
    assert headers["Signature"] == case["signature"]
    parsed = _parse(
        headers,
        method=case["method"],
        path=case["path"],
        query=case["query"],
        content_digest=digest,
    )
    assert parsed.signature_base.decode() == case["signature_base"]
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(VECTORS["verify_key_b64"]))
    signature = base64.b64decode(case["signature"].split(":")[1])
    public.verify(signature, case["signature_base"].encode())

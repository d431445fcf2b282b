"""HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from http_sfv.item import InnerList, Item

from keys.crypto.keypairs import SigningKey
from keys.errors import (
    DigestMismatch,
    HttpSignatureMalformed,
    HttpSignatureMissing,
    SignatureInvalid,
)
from keys.protocol.httpsig import (
    COVERED_COMPONENTS,
    ContentDigester,
    RequestSignature,
    _signature_base,
    content_digest,
    digest_matches,
    new_nonce,
    parse_request_signature,
    sign_request,
    verify_request_signature,
)

# RFC 9421 Appendix B.1.4 test-key-ed25519 (the private key's 32-byte seed from the PEM)
# and its public key; both are DER (PKCS#8 / SPKI) whose last 32 bytes are the key.
RFC_PRIVATE_DER = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"
RFC_PUBLIC_DER = "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs="
RFC_SEED = base64.b64decode(RFC_PRIVATE_DER)[-32:]
RFC_PUBLIC = base64.b64decode(RFC_PUBLIC_DER)[-32:]
RFC_BODY = b'{"hello": "world"}'
# RFC 9530 / RFC 9421 B.2: the digests of RFC_BODY
RFC_SHA256 = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
RFC_SHA512 = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRw"
    "EmTHWXvJwew==:"
)

KEY = SigningKey(bytes(range(32)))
KID = "so-nordost/anna/3"
NONCE = "bm9uY2Utbm9uY2UtMTIz"
REQUEST: dict[str, Any] = {
    "method": "POST",
    "path": "/v1/messages",
    "query": "unit=sav&wait=1",
    "content_digest": RFC_SHA256,
}


def _sign(**overrides: Any) -> dict[str, str]:
    args: dict[str, Any] = {**REQUEST, "created": 1_700_000_000, "nonce": NONCE}
    args.update(overrides)
    return sign_request(KEY, KID, **args)


def _parse(headers: dict[str, str], **overrides: Any) -> RequestSignature:
    args: dict[str, Any] = {
        **REQUEST,
        "signature_input": headers["Signature-Input"],
        "signature": headers["Signature"],
        "content_digest": headers["Content-Digest"],
    }
    args.update(overrides)
    return parse_request_signature(**args)


# --- known answers from the RFCs ---------------------------------------------------------
def test_rfc9421_b26_ed25519_signature_base_and_signature() -> None:
    """Our base builder and signer reproduce RFC 9421 §B.2.6 byte for byte."""
    components = ["date", "@method", "@path", "@authority", "content-type", "content-length"]
    params = InnerList([Item(c) for c in components])
    params.params["created"] = 1618884473
    params.params["keyid"] = "test-key-ed25519"
    values = [
        ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("@method", "POST"),
        ("@path", "/foo"),
        ("@authority", "example.com"),
        ("content-type", "application/json"),
        ("content-length", "18"),
    ]
    base = _signature_base(values, params)
    assert base == (
        b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        b'"@method": POST\n'
        b'"@path": /foo\n'
        b'"@authority": example.com\n'
        b'"content-type": application/json\n'
        b'"content-length": 18\n'
        b'"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
        b'"content-length");created=1618884473;keyid="test-key-ed25519"'
    )
    key = SigningKey(RFC_SEED)
    assert bytes(key.verify_key) == RFC_PUBLIC
    assert base64.b64encode(key.sign(base)).decode() == (
        "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
    )


def test_rfc9530_content_digest_of_the_example_body() -> None:
    assert content_digest(RFC_BODY) == RFC_SHA256
    assert digest_matches(RFC_SHA256, RFC_BODY)
    assert digest_matches(RFC_SHA512, RFC_BODY)
    assert digest_matches(f"{RFC_SHA512}, {RFC_SHA256}", RFC_BODY)


def test_our_signature_base_is_exactly_rfc9421_2_5() -> None:
    headers = _sign()
    sig = _parse(headers)
    assert sig.signature_base == (
        b'"@method": POST\n'
        b'"@path": /v1/messages\n'
        b'"@query": ?unit=sav&wait=1\n'
        b'"content-digest": sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:\n'
        b'"@signature-params": ("@method" "@path" "@query" "content-digest")'
        b';created=1700000000;nonce="bm9uY2Utbm9uY2UtMTIz";keyid="so-nordost/anna/3"'
        b';alg="ed25519"'
    )
    assert headers["Signature-Input"] == (
        'sig1=("@method" "@path" "@query" "content-digest");created=1700000000'
        ';nonce="bm9uY2Utbm9uY2UtMTIz";keyid="so-nordost/anna/3";alg="ed25519"'
    )
    assert re.fullmatch(r"sig1=:[A-Za-z0-9+/]{86}==:", headers["Signature"])
    assert headers["Content-Digest"] == RFC_SHA256
    assert (sig.keyid, sig.created, sig.nonce) == (KID, 1_700_000_000, NONCE)
    assert KEY.verify_key.is_valid(sig.signature_base, sig.signature)


def test_empty_query_and_lowercase_method() -> None:
    sig = _parse(_sign(method="get", query=""), method="GET", query="")
    assert b'"@method": GET\n' in sig.signature_base
    assert b'"@query": ?\n' in sig.signature_base
    verify_request_signature(sig, KEY.verify_key)


def test_round_trip_verifies() -> None:
    verify_request_signature(_parse(_sign()), KEY.verify_key)


def test_whitespace_in_headers_does_not_matter() -> None:
    headers = _sign()
    sig = _parse(
        headers,
        signature_input="  " + headers["Signature-Input"],
        content_digest=headers["Content-Digest"] + " ",
    )
    verify_request_signature(sig, KEY.verify_key)


def test_components_in_another_order_are_valid_rfc9421() -> None:
    # Built by hand (another RFC 9421 signer may order components differently).
    params = InnerList([Item(c) for c in reversed(COVERED_COMPONENTS)])
    for name, value in (("created", 5), ("nonce", NONCE), ("keyid", KID), ("alg", "ed25519")):
        params.params[name] = value
    values = {
        "@method": "POST",
        "@path": REQUEST["path"],
        "@query": "?" + REQUEST["query"],
        "content-digest": RFC_SHA256,
    }
    base = _signature_base([(c, values[c]) for c in reversed(COVERED_COMPONENTS)], params)
    signature = base64.b64encode(KEY.sign(base)).decode()
    sig = _parse(
        {
            "Signature-Input": f"sig1={params}",
            "Signature": f"sig1=:{signature}:",
            "Content-Digest": RFC_SHA256,
        }
    )
    assert sig.signature_base == base
    verify_request_signature(sig, KEY.verify_key)


# --- tampering ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {"method": "PUT"},
        {"path": "/v1/messages/other"},
        {"query": "unit=so-nordost&wait=1"},
        {"query": ""},
        {"content_digest": content_digest(b"another body")},
    ],
)
def test_tampered_request_is_invalid(change: dict[str, str]) -> None:
    sig = _parse(_sign(), **change)
    with pytest.raises(SignatureInvalid) as info:
        verify_request_signature(sig, KEY.verify_key)
    assert info.value.code == "signature_invalid"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("created=1700000000", "created=1700000001"),
        ('keyid="so-nordost/anna/3"', 'keyid="so-nordost/anna/4"'),
        ('keyid="so-nordost/anna/3"', 'keyid="sav/eva/3"'),
        (f'nonce="{NONCE}"', 'nonce="aaaaaaaaaaaaaaaaaaaa"'),
    ],
)
def test_tampered_signature_params_are_invalid(old: str, new: str) -> None:
    headers = _sign()
    assert old in headers["Signature-Input"]
    sig = _parse(headers, signature_input=headers["Signature-Input"].replace(old, new))
    with pytest.raises(SignatureInvalid):
        verify_request_signature(sig, KEY.verify_key)


def test_flipped_signature_bit_is_invalid() -> None:
    headers = _sign()
    raw = bytearray(base64.b64decode(headers["Signature"][6:-1]))
    raw[0] ^= 1
    sig = _parse(headers, signature=f"sig1=:{base64.b64encode(bytes(raw)).decode()}:")
    with pytest.raises(SignatureInvalid):
        verify_request_signature(sig, KEY.verify_key)


def test_other_key_is_invalid() -> None:
    with pytest.raises(SignatureInvalid):
        verify_request_signature(_parse(_sign()), SigningKey.generate().verify_key)


# --- missing and malformed ----------------------------------------------------------------
@pytest.mark.parametrize("which", ["signature_input", "signature"])
@pytest.mark.parametrize("value", [None, ""])
def test_missing_headers(which: str, value: str | None) -> None:
    with pytest.raises(HttpSignatureMissing) as info:
        _parse(_sign(), **{which: value})
    assert info.value.code == "signature_missing"


def _input_with(components: str, params: str) -> str:
    return f"sig1=({components}){params}"


GOOD_COMPONENTS = '"@method" "@path" "@query" "content-digest"'
GOOD_PARAMS = f';created=1700000000;nonce="{NONCE}";keyid="{KID}";alg="ed25519"'


@pytest.mark.parametrize(
    "signature_input",
    [
        "sig2=" + _input_with(GOOD_COMPONENTS, GOOD_PARAMS)[5:],  # wrong label
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS) + ", sig2=()",  # two signatures
        _input_with('"@method" "@path" "@query"', GOOD_PARAMS),  # digest not covered
        _input_with(GOOD_COMPONENTS + ' "@authority"', GOOD_PARAMS),  # extra component
        _input_with('"@method" "@method" "@path" "@query" "content-digest"', GOOD_PARAMS),
        _input_with('"@method" "@path" "@query" "content-digest";sf', GOOD_PARAMS),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace("ed25519", "rsa-pss-sha512")),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace(';alg="ed25519"', "")),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace(";created=1700000000", "")),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace(f';nonce="{NONCE}"', "")),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace(f';keyid="{KID}"', "")),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS + ";expires=1700000300"),  # unknown param
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace("1700000000", '"1700000000"')),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace("1700000000", "-1")),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace("1700000000", "?1")),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace(NONCE, "short")),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace(NONCE, "a" * 65)),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace(NONCE, "not/url+safe=====")),
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace(f'"{KID}"', "so-nordost")),  # token
        _input_with(GOOD_COMPONENTS, GOOD_PARAMS.replace(KID, "not a kid")),
        "sig1=:AAAA:",  # not an inner list
        "sig1=(",  # not RFC 8941
        'sig1=("@method")\r\n"@path": /x',  # header-injection attempt
        'sig1=("@méthod")',  # non-ASCII
    ],
)
def test_malformed_signature_input(signature_input: str) -> None:
    with pytest.raises(HttpSignatureMalformed) as info:
        _parse(_sign(), signature_input=signature_input)
    assert info.value.code == "signature_malformed"


@pytest.mark.parametrize(
    "signature",
    [
        "sig2=:" + base64.b64encode(bytes(64)).decode() + ":",
        "sig1=:" + base64.b64encode(bytes(63)).decode() + ":",
        "sig1=:" + base64.b64encode(bytes(65)).decode() + ":",
        'sig1="not bytes"',
        "sig1=:" + base64.b64encode(bytes(64)).decode() + ":;x=1",
        "sig1=:%%%:",
    ],
)
def test_malformed_signature(signature: str) -> None:
    with pytest.raises(HttpSignatureMalformed):
        _parse(_sign(), signature=signature)


@pytest.mark.parametrize(
    "change",
    [
        {"content_digest": None},
        {"path": "v1/messages"},  # not absolute
        {"path": "/v1/messages?x=1"},
        {"path": '/v1/messages\n"@query": ?'},  # forged line
        {"query": "a=1\r\nb=2"},
        {"content_digest": RFC_SHA256 + "\n"},
        {"method": "PO ST"},
        {"method": ""},
        {"path": "/v1/m\u00e9ssages"},
    ],
)
def test_malformed_request_components(change: dict[str, Any]) -> None:
    with pytest.raises(HttpSignatureMalformed):
        _parse(_sign(), **change)


@pytest.mark.parametrize(
    "change",
    [
        {"nonce": "short"},
        {"created": -1},
        {"created": True},
        {"path": "/x\n"},
        {"content_digest": "sha-256=:x:\r\n"},
    ],
)
def test_signing_refuses_bad_input(change: dict[str, Any]) -> None:
    with pytest.raises(HttpSignatureMalformed):
        _sign(**change)


def test_signing_refuses_bad_keyid() -> None:
    with pytest.raises(HttpSignatureMalformed):
        sign_request(KEY, "anna", **REQUEST, created=1, nonce=NONCE)  # not unit/name/version


def test_new_nonce_is_fresh_and_in_profile() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16,64}", n) for n in nonces)
    verify_request_signature(_parse(_sign(nonce=new_nonce())), KEY.verify_key)


# --- Content-Digest -----------------------------------------------------------------------
def test_streaming_digester_equals_one_shot() -> None:
    body = bytes(range(256)) * 1000
    digester = ContentDigester()
    for start in range(0, len(body), 4096):
        digester.update(body[start : start + 4096])
    assert digester.header() == content_digest(body)
    assert digest_matches(digester.header(), digester)
    assert digest_matches(digester.header(), body)


def test_empty_body_digest() -> None:
    # sha-256 of the empty string
    assert content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


@pytest.mark.parametrize(
    "header",
    [
        content_digest(b"other"),
        RFC_SHA256.replace("X48", "Y48"),
        "sha-256=:AAAA:",  # wrong length
        "md5=:AAAAAAAAAAAAAAAAAAAAAA==:",  # only unsupported algorithms
        "",
        "sha-256",  # boolean, not bytes
        'sha-256="X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="',  # string, not bytes
        "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",  # not RFC 8941
        f"{RFC_SHA256}, sha-512=:{base64.b64encode(bytes(64)).decode()}:",  # one wrong
        "sha-256=:" + "A" * 1000 + ":",  # absurdly long
    ],
)
def test_digest_mismatches(header: str) -> None:
    assert not digest_matches(header, RFC_BODY)
    digester = ContentDigester()
    digester.update(RFC_BODY)
    assert not digest_matches(header, digester)


def test_unknown_algorithms_are_ignored_next_to_a_known_one() -> None:
    assert digest_matches(f"md5=:AAAAAAAAAAAAAAAAAAAAAA==:, {RFC_SHA256}", RFC_BODY)


def test_digest_mismatch_error_code() -> None:
    # The gateway raises this when digest_matches is False; the code is part of the API.
    assert DigestMismatch().code == "digest_mismatch"

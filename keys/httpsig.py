"""HTTP Message Signatures (RFC 9421) with Ed25519, and Content-Digest (RFC 9530).

Every request to the gateway is signed by the calling device. The client SDK signs with
:func:`sign_request`; the gateway parses with :func:`parse_request_signature`, looks up
``keyid`` in the verified directory, checks ``created`` (staleness) and ``nonce``
(replay) itself, verifies with :func:`verify_request_signature`, and checks the body
against the Content-Digest with :func:`digest_matches` / :class:`ContentDigester`.

Profile (anything else is refused as malformed, so there is one way to sign)::

    Signature-Input: sig1=("@method" "@path" "@query" "content-digest");
                     created=<int>;nonce="<16-64 url-safe>";keyid="<kid>";alg="ed25519"
    Signature:       sig1=:<64-byte Ed25519 signature, base64>:

The signature base follows RFC 9421 §2.5: one line per covered component,
``"<name>": <value>``, then ``"@signature-params": <the serialized inner list>``, joined
by LF with no trailing newline. The structured fields are parsed and serialized with
``http_sfv`` (RFC 8941), never by hand.

Threats: a captured request replayed or altered in transit behind the TLS proxy (method,
path, query and body digest are all covered); header injection into the signature base
(component values with CR/LF or non-ASCII are refused, so a value cannot forge a line);
algorithm confusion (``alg`` must be ``ed25519``; the key type decides, not the request).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item

from .errors import HttpSignatureMalformed, HttpSignatureMissing, KeyIdInvalid
from .keypairs import SIGNATURE_BYTES, KeyId, SigningKey, VerifyKey

COVERED_COMPONENTS = ("@method", "@path", "@query", "content-digest")
LABEL = "sig1"
ALG = "ed25519"
_PARAM_NAMES = ("created", "nonce", "keyid", "alg")
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}", re.ASCII)
_METHOD_RE = re.compile(r"[A-Za-z]{1,16}", re.ASCII)
# Printable ASCII only: no CR/LF (a value containing "\n" could add a forged line to the
# signature base) and nothing a proxy might re-encode between signer and verifier.
_SAFE_VALUE_RE = re.compile(r"[\x20-\x7e]*", re.ASCII)
# RFC 9530 algorithms we accept; the one we produce is the first.
_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
_PRODUCED = "sha-256"
# A Content-Digest header longer than this is not ours (two digests fit in ~140 bytes).
_MAX_DIGEST_HEADER = 512


# --- Content-Digest (RFC 9530) ------------------------------------------------------------
class ContentDigester:
    """Streaming Content-Digest: feed the body chunk by chunk, memory stays constant.

    Computes sha-256 (what we produce) and sha-512 (what a peer may send) in one pass.
    """

    def __init__(self) -> None:
        self._hashes = {name: factory() for name, factory in _DIGESTS.items()}

    def update(self, chunk: bytes) -> None:
        for h in self._hashes.values():
            h.update(chunk)

    def digest(self, algorithm: str) -> bytes:
        """The raw digest for ``sha-256`` or ``sha-512`` of everything fed so far."""
        return self._hashes[algorithm].digest()

    def header(self) -> str:
        """The Content-Digest header value, ``sha-256=:<base64>:``."""
        field = Dictionary()
        field[_PRODUCED] = self.digest(_PRODUCED)
        return str(field)


def content_digest(body: bytes) -> str:
    """Content-Digest header value for a whole body: ``sha-256=:<base64>:``."""
    digester = ContentDigester()
    digester.update(body)
    return digester.header()


def digest_matches(header_value: str, computed: ContentDigester | bytes) -> bool:
    """True if every supported digest in the header matches the body (constant time).

    At least one of sha-256/sha-512 must be present; unknown algorithms are ignored as
    RFC 9530 asks. A header that does not parse never matches.
    """
    if isinstance(computed, bytes):
        body = computed
        computed = ContentDigester()
        computed.update(body)
    parsed = _parse_dictionary(header_value, max_len=_MAX_DIGEST_HEADER)
    if parsed is None:
        return False
    checked = 0
    for name, member in parsed.items():
        if name not in _DIGESTS:
            continue
        value = member.value if isinstance(member, Item) else None
        if not isinstance(value, bytes) or not hmac.compare_digest(value, computed.digest(name)):
            return False
        checked += 1
    return checked > 0


# --- signing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestSignature:
    """A parsed request signature and the signature base it must verify over."""

    keyid: str
    created: int
    nonce: str
    signature: bytes
    signature_base: bytes


def new_nonce() -> str:
    """A fresh request nonce: 32 url-safe characters (192 random bits)."""
    return secrets.token_urlsafe(24)


def sign_request(
    key: SigningKey,
    keyid: str,
    *,
    method: str,
    path: str,
    query: str,
    content_digest: str,
    created: int,
    nonce: str,
) -> dict[str, str]:
    """Sign a request; returns the ``Content-Digest``, ``Signature-Input`` and
    ``Signature`` headers to send.

    ``path`` is the request path as sent (percent-encoded, without the query);
    ``query`` is the query string without the leading ``?`` (empty if none);
    ``content_digest`` is the header value from :func:`content_digest`.
    """
    _check_keyid(keyid)
    _check_nonce(nonce)
    if type(created) is not int or created < 0:
        raise HttpSignatureMalformed("created must be a non-negative integer")
    params = InnerList([Item(name) for name in COVERED_COMPONENTS])
    params.params["created"] = created
    params.params["nonce"] = nonce
    params.params["keyid"] = keyid
    params.params["alg"] = ALG
    base = _signature_base(
        _component_values(COVERED_COMPONENTS, method, path, query, content_digest), params
    )
    signature_input = Dictionary()
    signature_input[LABEL] = params
    signature = Dictionary()
    signature[LABEL] = key.sign(base)
    return {
        "Content-Digest": content_digest.strip(" \t"),
        "Signature-Input": str(signature_input),
        "Signature": str(signature),
    }


# --- verifying ------------------------------------------------------------------------------
def parse_request_signature(
    *,
    signature_input: str | None,
    signature: str | None,
    method: str,
    path: str,
    query: str,
    content_digest: str | None,
) -> RequestSignature:
    """Parse and check the signature headers; rebuild the signature base.

    Raises :class:`HttpSignatureMissing` if either header is absent and
    :class:`HttpSignatureMalformed` for anything outside the profile. Does not verify
    the signature, the key, freshness or replay: see the module docstring.
    """
    if not signature_input or not signature:
        raise HttpSignatureMissing("the request is not signed (Signature-Input/Signature)")
    if content_digest is None:
        raise HttpSignatureMalformed("a signed request must carry a Content-Digest header")

    inputs = _parse_dictionary(signature_input)
    signatures = _parse_dictionary(signature)
    if inputs is None or signatures is None:
        raise HttpSignatureMalformed("Signature-Input/Signature are not RFC 8941 dictionaries")
    # Exactly one signature, labelled sig1: a second, unchecked signature next to ours
    # would only invite confusion about which one was verified.
    if list(inputs) != [LABEL] or list(signatures) != [LABEL]:
        raise HttpSignatureMalformed("expected exactly one signature labelled sig1")

    params = inputs[LABEL]
    if not isinstance(params, InnerList):
        raise HttpSignatureMalformed("Signature-Input sig1 must be an inner list")
    components = _covered_components(params)
    created, nonce, keyid = _signature_params(params)

    sig_item = signatures[LABEL]
    sig_bytes = sig_item.value if isinstance(sig_item, Item) else None
    if not isinstance(sig_bytes, bytes) or len(sig_bytes) != SIGNATURE_BYTES or sig_item.params:
        raise HttpSignatureMalformed("Signature sig1 must be a 64-byte byte sequence")

    # The base is rebuilt from the parsed (re-serialized) parameters: that is exactly
    # what RFC 9421 §2.3 asks the verifier to sign over, whatever white space was sent.
    base = _signature_base(
        _component_values(components, method, path, query, content_digest), params
    )
    return RequestSignature(
        keyid=keyid, created=created, nonce=nonce, signature=sig_bytes, signature_base=base
    )


def verify_request_signature(sig: RequestSignature, key: VerifyKey) -> None:
    """Raise :class:`~keys.errors.SignatureInvalid` unless the signature verifies."""
    key.verify(sig.signature_base, sig.signature)


# --- internals ------------------------------------------------------------------------------
def _parse_dictionary(value: str, *, max_len: int = 4096) -> Dictionary | None:
    if not isinstance(value, str) or len(value) > max_len:
        return None
    field = Dictionary()
    try:
        field.parse(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return field


def _covered_components(params: InnerList) -> tuple[str, ...]:
    names: list[str] = []
    for item in params:
        # Components must be plain strings without parameters: ";sf", ";key", ";req"
        # and friends change what a component means, and we support none of them.
        if not isinstance(item, Item) or type(item.value) is not str or item.params:
            raise HttpSignatureMalformed("covered components must be plain strings")
        names.append(item.value)
    # Any order is valid RFC 9421 (the base follows the signer's order), but the set
    # must be exactly ours: nothing uncovered, nothing we do not know how to compute.
    if len(names) != len(set(names)) or set(names) != set(COVERED_COMPONENTS):
        raise HttpSignatureMalformed(
            'covered components must be exactly "@method" "@path" "@query" "content-digest"'
        )
    return tuple(names)


def _signature_params(params: InnerList) -> tuple[int, str, str]:
    if set(params.params) != set(_PARAM_NAMES):
        raise HttpSignatureMalformed("signature parameters must be created, nonce, keyid, alg")
    created = params.params["created"]
    nonce = params.params["nonce"]
    keyid = params.params["keyid"]
    alg = params.params["alg"]
    if type(alg) is not str or alg != ALG:
        raise HttpSignatureMalformed('alg must be "ed25519"')
    if type(created) is not int or created < 0:
        raise HttpSignatureMalformed("created must be a non-negative integer")
    if type(nonce) is not str:
        raise HttpSignatureMalformed("nonce must be a string")
    _check_nonce(nonce)
    if type(keyid) is not str:
        raise HttpSignatureMalformed("keyid must be a string")
    _check_keyid(keyid)
    return created, nonce, keyid


def _check_nonce(nonce: str) -> None:
    if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
        raise HttpSignatureMalformed("nonce must be 16-64 url-safe characters")


def _check_keyid(keyid: str) -> None:
    try:
        KeyId.parse(keyid)
    except (KeyIdInvalid, TypeError):
        raise HttpSignatureMalformed("keyid must be a key id unit/name/version") from None


def _component_values(
    order: tuple[str, ...], method: str, path: str, query: str, content_digest: str
) -> list[tuple[str, str]]:
    if not isinstance(method, str) or not _METHOD_RE.fullmatch(method):
        raise HttpSignatureMalformed("the request method is not a method name")
    for value in (path, query, content_digest):
        if not isinstance(value, str) or not _SAFE_VALUE_RE.fullmatch(value):
            raise HttpSignatureMalformed("request components must be printable ASCII")
    if path and not path.startswith("/"):
        raise HttpSignatureMalformed("@path must be an absolute path")
    if "?" in path or "#" in path:
        raise HttpSignatureMalformed("@path must not contain a query or fragment")
    values = {
        "@method": method.upper(),
        "@path": path or "/",  # RFC 9421 §2.2.6: an empty path is "/"
        "@query": "?" + query,  # §2.2.7: "?" alone when the query is empty
        # §2.1: a field's value with leading and trailing white space removed
        "content-digest": content_digest.strip(" \t"),
    }
    return [(name, values[name]) for name in order]


def _signature_base(components: list[tuple[str, str]], params: InnerList) -> bytes:
    """RFC 9421 §2.5 signature base for the given (identifier, value) pairs."""
    lines = [f"{Item(name)}: {value}" for name, value in components]
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines).encode("ascii")

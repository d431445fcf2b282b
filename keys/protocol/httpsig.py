"""HTTP Message Signatures (RFC 9421) with Ed25519, and Content-Digest (RFC 9530).

Every request to the gateway is signed by the calling device. The client SDK signs with
:func:`sign_request`; the gateway parses with :func:`parse_request_signature`, looks up
``keyid`` in the verified directory, checks ``created`` (staleness) and ``nonce``
(replay) itself, verifies with :func:`verify_request_signature`, and checks the body
against the Content-Digest with :func:`digest_matches` / :class:`ContentDigester`.

Profile (what we produce; ``docs/protocol.md`` "Request signatures" is the contract)::

    Signature-Input: sig1=("@method" "@path" "@query" "content-digest");
                     created=<int>;nonce="<16-64 url-safe>";keyid="<kid>";alg="ed25519"
    Signature:       sig1=:<64-byte Ed25519 signature, base64>:

What a verifier here also accepts, because RFC 9421 allows it and it costs nothing in
safety: the components in any order, *additional* covered components (header fields
present in the request, ``@authority``, ``@request-target``: covering more only binds
more), any single label, and a ``tag`` parameter. Never accepted: a request without
the four required components (nothing uncovered), a second signature, component
parameters (``;sf``, ``;key``, ``;req``, ...), ``expires`` (we could not honour it as
the signer meant), another ``alg``.

Repeated field lines (RFC 9421 §2.1): ``Signature-Input``, ``Signature``,
``Content-Digest`` and covered fields may arrive as several lines; they are combined
as §2.1 says (each line's value trimmed, joined by ", ") — never only the first read.
A label that appears on two lines is refused (which one would be meant?).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item

from keys.crypto.keypairs import SIGNATURE_BYTES, KeyId, SigningKey, VerifyKey
from keys.errors import HttpSignatureMalformed, HttpSignatureMissing, KeyIdInvalid
from keys.protocol import sfv_fast

COVERED_COMPONENTS = ("@method", "@path", "@query", "content-digest")
LABEL = "sig1"
ALG = "ed25519"
_PARAM_NAMES = ("created", "nonce", "keyid", "alg")
_OPTIONAL_PARAMS = ("tag",)
_EXTRA_DERIVED = ("@authority", "@request-target")
# Signing over these would be circular or meaningless for a request.
_NOT_COVERABLE = ("signature", "signature-input")
_FIELD_NAME_RE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,64}", re.ASCII)
_MAX_COMPONENTS = 16
_MAX_SFV = 4096  # the longest Signature-Input / Signature value looked at
_PLAIN_NAME_RE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*", re.ASCII)
# Reads every line of a request header field by (lower-case) name, e.g.
# ``lambda name: request.headers.getall(name, [])``.
FieldLines = Callable[[str], Sequence[str]]
HeaderValue = str | Sequence[str] | None
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
def combine_field_lines(lines: HeaderValue) -> str | None:
    """One field value from its lines, as RFC 9421 §2.1 says: each line's value with
    leading and trailing white space removed, joined by ", " (None: no line at all)."""
    if lines is None:
        return None
    if isinstance(lines, str):
        return lines.strip(" \t")
    if not lines:
        return None
    return ", ".join(line.strip(" \t") for line in lines)


def _labels_once(lines: HeaderValue) -> None:
    """Refuse a label repeated across field lines (combining would keep only the last)."""
    if lines is None or isinstance(lines, str) or len(lines) < 2:
        return
    seen: list[str] = []
    for line in lines:
        parsed = _parse_dictionary(line)
        if parsed is None:
            raise HttpSignatureMalformed("Signature-Input/Signature are not RFC 8941 dictionaries")
        seen.extend(parsed)
    if len(seen) != len(set(seen)):
        raise HttpSignatureMalformed("a signature label appears on two field lines")


def parse_request_signature(
    *,
    signature_input: HeaderValue,
    signature: HeaderValue,
    method: str,
    path: str,
    query: str,
    content_digest: HeaderValue,
    field_lines: FieldLines | None = None,
    authority: str | None = None,
) -> RequestSignature:
    """Parse and check the signature headers; rebuild the signature base.

    Header values are a string or the list of the field's lines (combined per RFC 9421
    §2.1). ``field_lines`` reads other header fields a signer chose to cover too;
    ``authority`` is the request's Host (for ``@authority``). Without them, such
    components are refused.

    Raises :class:`HttpSignatureMissing` if either header is absent and
    :class:`HttpSignatureMalformed` for anything outside the profile. Does not verify
    the signature, the key, freshness or replay: see the module docstring.
    """
    _labels_once(signature_input)
    _labels_once(signature)
    signature_input = combine_field_lines(signature_input)
    signature = combine_field_lines(signature)
    content_digest = combine_field_lines(content_digest)
    if not signature_input or not signature:
        raise HttpSignatureMissing("the request is not signed (Signature-Input/Signature)")
    if content_digest is None:
        raise HttpSignatureMalformed("a signed request must carry a Content-Digest header")

    fast = _parse_canonical(signature_input, signature)
    if fast is not None:
        params, params_text, sig_bytes = fast
    else:
        params, sig_bytes = _parse_general(signature_input, signature)
        params_text = None
    components = _covered_components(params)
    created, nonce, keyid = _signature_params(params)

    # The base is rebuilt from the parsed (re-serialized) parameters: that is exactly
    # what RFC 9421 §2.3 asks the verifier to sign over, whatever white space was sent.
    values = _component_values(
        components, method, path, query, content_digest, field_lines, authority
    )
    base = _signature_base(values, params, params_text)
    return RequestSignature(
        keyid=keyid, created=created, nonce=nonce, signature=sig_bytes, signature_base=base
    )


def verify_request_signature(sig: RequestSignature, key: VerifyKey) -> None:
    """Raise :class:`~keys.errors.SignatureInvalid` unless the signature verifies."""
    key.verify(sig.signature_base, sig.signature)


# --- internals ------------------------------------------------------------------------------
def _parse_canonical(signature_input: str, signature: str) -> tuple[InnerList, str, bytes] | None:
    """The fast path (``keys.protocol.sfv_fast``) for canonical headers: the parsed
    inner list, its canonical text and the signature bytes; None for anything else."""
    if len(signature_input) > _MAX_SFV or len(signature) > _MAX_SFV:
        return None
    parsed_input = sfv_fast.parse_signature_input(signature_input)
    parsed_sig = sfv_fast.parse_signature(signature) if parsed_input is not None else None
    if parsed_input is None or parsed_sig is None or parsed_input[0] != parsed_sig[0]:
        return None
    return parsed_input[1], parsed_input[2], parsed_sig[1]


def _parse_general(signature_input: str, signature: str) -> tuple[InnerList, bytes]:
    """Any RFC 8941 serialisation, through ``http_sfv``."""
    inputs = _parse_dictionary(signature_input)
    signatures = _parse_dictionary(signature)
    if inputs is None or signatures is None:
        raise HttpSignatureMalformed("Signature-Input/Signature are not RFC 8941 dictionaries")
    # Exactly one signature (its label is the signer's choice, the same in both): a
    # second, unchecked signature would only invite confusion about which one counted.
    if len(inputs) != 1 or list(inputs) != list(signatures):
        raise HttpSignatureMalformed("expected exactly one signature, one label in both")
    label = next(iter(inputs))
    params = inputs[label]
    if not isinstance(params, InnerList):
        raise HttpSignatureMalformed("Signature-Input's member must be an inner list")
    sig_item = signatures[label]
    sig_bytes = sig_item.value if isinstance(sig_item, Item) else None
    if not isinstance(sig_bytes, bytes) or len(sig_bytes) != SIGNATURE_BYTES or sig_item.params:
        raise HttpSignatureMalformed("Signature sig1 must be a 64-byte byte sequence")
    return params, sig_bytes


def _parse_dictionary(value: str, *, max_len: int = _MAX_SFV) -> Dictionary | None:
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
    # Any order is valid RFC 9421 (the base follows the signer's order). Ours must all
    # be there (nothing uncovered); more may be, when we know how to compute them.
    if len(names) != len(set(names)) or len(names) > _MAX_COMPONENTS:
        raise HttpSignatureMalformed("covered components repeat or are too many")
    if not set(COVERED_COMPONENTS) <= set(names):
        raise HttpSignatureMalformed(
            'covered components must include "@method" "@path" "@query" "content-digest"'
        )
    for name in set(names) - set(COVERED_COMPONENTS):
        derived_ok = name in _EXTRA_DERIVED
        field_ok = _FIELD_NAME_RE.fullmatch(name) is not None and name not in _NOT_COVERABLE
        if not (derived_ok or field_ok):
            raise HttpSignatureMalformed("a covered component this gateway cannot compute")
    return tuple(names)


def _signature_params(params: InnerList) -> tuple[int, str, str]:
    names = set(params.params)
    if not set(_PARAM_NAMES) <= names or not names <= set(_PARAM_NAMES + _OPTIONAL_PARAMS):
        raise HttpSignatureMalformed(
            "signature parameters must be created, nonce, keyid, alg (and optionally tag)"
        )
    if "tag" in names and type(params.params["tag"]) is not str:
        raise HttpSignatureMalformed("tag must be a string")
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


def _quoted(name: str) -> str:
    """RFC 8941 string serialisation of a component name (quotes; escapes only for
    '"' and '\\', which the checked names never hold — http_sfv decides then)."""
    return f'"{name}"' if _PLAIN_NAME_RE.fullmatch(name) else str(Item(name))


def _check_nonce(nonce: str) -> None:
    if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
        raise HttpSignatureMalformed("nonce must be 16-64 url-safe characters")


def _check_keyid(keyid: str) -> None:
    try:
        KeyId.parse(keyid)
    except (KeyIdInvalid, TypeError):
        raise HttpSignatureMalformed("keyid must be a key id unit/name/version") from None


def _component_values(
    order: tuple[str, ...],
    method: str,
    path: str,
    query: str,
    content_digest: str,
    field_lines: FieldLines | None = None,
    authority: str | None = None,
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
        # §2.2.5: path and query as in the request line (origin-form)
        "@request-target": (path or "/") + ("?" + query if query else ""),
    }
    if authority is not None:
        values["@authority"] = authority.strip(" \t").lower()  # §2.2.3: lower-cased host
    for name in order:
        if name in values or name.startswith("@"):
            continue
        lines = field_lines(name) if field_lines is not None else []
        combined = combine_field_lines(list(lines))
        if combined is None:
            # §2.5: a covered component that is not in the message fails the signature.
            raise HttpSignatureMalformed("a covered header field is not in the request")
        values[name] = combined
    for name in order:
        if name not in values:
            raise HttpSignatureMalformed("a covered component this request cannot provide")
        if not _SAFE_VALUE_RE.fullmatch(values[name]):
            raise HttpSignatureMalformed("request components must be printable ASCII")
    return [(name, values[name]) for name in order]


def _signature_base(
    components: list[tuple[str, str]], params: InnerList, params_text: str | None = None
) -> bytes:
    """RFC 9421 §2.5 signature base for the given (identifier, value) pairs.

    ``params_text``: the canonical serialisation of ``params`` when it is already known
    (the fast path read exactly that text); otherwise it is serialised here."""
    lines = [f"{_quoted(name)}: {value}" for name, value in components]
    lines.append(f'"@signature-params": {params if params_text is None else params_text}')
    return "\n".join(lines).encode("ascii")

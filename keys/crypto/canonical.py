"""Canonical JSON and domain-separated hashing.

Everything that is signed or hashed is first turned into one exact byte string:
sorted keys, no insignificant white space, UTF-8, and no floats (a float has more than
one textual form, so two honest implementations could disagree on the bytes).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from keys.errors import KeysError

_MAX_INT = 2**53 - 1  # integers beyond this are not portable across JSON implementations
# Nesting bound. Threat: a header or wrapped-keys section of 16 KiB of "[" (or a hostile
# directory/consent document) made Python's recursive parser raise RecursionError, which
# is no KeysError and surfaced as a crash / HTTP 500 instead of a refusal. Nothing Stafett
# signs nests deeper than a handful of levels.
MAX_DEPTH = 32


class NotCanonical(KeysError):
    """The value cannot be expressed as canonical JSON (floats, huge ints, bad keys)."""

    code = "not_canonical"


def _check(value: Any, depth: int = 0) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_INT:
            raise NotCanonical("integer out of the portable range")
        return
    if isinstance(value, float):
        raise NotCanonical("floats are not allowed in canonical JSON")
    if depth >= MAX_DEPTH:
        raise NotCanonical(f"JSON nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, list | tuple):
        for item in value:
            _check(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonical("object keys must be strings")
            _check(item, depth + 1)
        return
    raise NotCanonical(f"type {type(value).__name__} is not JSON")


def canonical_json(value: Any) -> bytes:
    """Return the canonical byte form of ``value`` (sorted keys, compact, UTF-8)."""
    _check(value)
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (JSON "\ud800" escape) has no UTF-8 form: refuse it as input
        # error instead of letting UnicodeEncodeError escape as a crash (a 500).
        raise NotCanonical("strings must be valid Unicode (no lone surrogates)") from None


def parse_canonical(data: bytes) -> Any:
    """Parse JSON and insist it was canonical: re-encoding must give the same bytes.

    Refusing non-canonical input means one message has exactly one byte form, so a
    signature over it cannot be re-used for a differently spelled but "equal" header.
    """
    try:
        value = json.loads(data.decode("utf-8"), parse_float=_refuse_float)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise NotCanonical("not valid JSON") from exc
    except RecursionError:
        # Deeper than the interpreter's stack allows: refused like any other input error
        # (``from None``: the traceback would be thousands of frames long).
        raise NotCanonical(f"JSON nests deeper than {MAX_DEPTH} levels") from None
    if canonical_json(value) != data:
        raise NotCanonical("JSON is not in canonical form")
    return value


def _refuse_float(_text: str) -> float:
    raise ValueError("float")


def hash32(data: bytes, person: bytes) -> bytes:
    """BLAKE2b-256 with a personalisation string (domain separation, ≤ 16 bytes)."""
    if len(person) > 16:
        raise ValueError("BLAKE2b personalisation is at most 16 bytes")
    # hashlib's BLAKE2b gives the bytes of libsodium's crypto_generichash_blake2b_salt_
    # personal (no key, zero salt, person zero-padded to 16; docs/protocol.md, checked
    # against libsodium in tests/keys/crypto): the canonical form and its hashes need no
    # nacl, so the record parsers and the domain load without it.
    return hashlib.blake2b(data, digest_size=32, person=person).digest()


class Hasher:
    """Incremental BLAKE2b-256 with a personalisation string, for streamed bodies."""

    def __init__(self, person: bytes) -> None:
        # hashlib's blake2b is the same primitive as libsodium's generichash (BLAKE2b),
        # and is incremental; the personalisation makes it domain-separated.
        self._h = hashlib.blake2b(digest_size=32, person=person)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()


def b64e(data: bytes) -> str:
    """Standard base64 without line breaks (what every key field in JSON uses)."""
    return base64.b64encode(data).decode("ascii")


def b64d(text: str, *, size: int | None = None) -> bytes:
    """Strict base64 decode; ``size`` checks the decoded length."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise NotCanonical("invalid base64") from exc
    if b64e(raw) != text:
        raise NotCanonical("non-canonical base64")
    if size is not None and len(raw) != size:
        raise NotCanonical(f"expected {size} bytes, got {len(raw)}")
    return raw

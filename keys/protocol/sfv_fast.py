"""A fast path for the two signature header fields in their canonical form.

Every request the gateway serves carries ``Signature-Input`` and ``Signature``, and
parsing them with ``http_sfv`` (RFC 8941 in pure Python, a generator per character of
every string) cost ~0.15 ms per request, about a tenth of the gateway's CPU on a
handover (issue 13). Clients, ours and others, send the *canonical* serialisation —
what RFC 8941 §4.1 produces — and for that exact text the parse is a few regular
expressions. So:

- a value that is the canonical serialisation of a one-member dictionary in our
  profile (an inner list of plain strings with string or integer parameters; a 64-byte
  byte sequence) is parsed here, into the same ``http_sfv`` objects, and its
  signature-params text is the raw member text itself (the canonical serialisation is
  what RFC 9421 §2.3 signs over);
- anything else — other white space, escapes, other types, duplicate keys, several
  members — returns None and goes through ``http_sfv`` exactly as before, which decides
  and refuses. The fast path never accepts what ``http_sfv`` would refuse, and never
  reads a value differently: ``tests/keys/protocol/test_sfv_fast.py`` checks both on
  generated and on hand-made inputs.
"""

from __future__ import annotations

import base64
import re

from http_sfv.item import InnerList, Item

# RFC 8941 §3.1.2 key; §3.3.3 string without escapes (no '"' or '\'); §3.3.1 integer
# in its canonical form (no leading zeros, no "+", at most 15 digits).
_KEY = r"[a-z*][a-z0-9_\-.*]{0,63}"
_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'
_INTEGER = r"0|-?[1-9][0-9]{0,14}"  # not "-0": it serialises as "0"
_PARAM = re.compile(rf";({_KEY})=(?:({_STRING})|({_INTEGER}))(?=;|$)", re.ASCII)
_INPUT = re.compile(
    rf"({_KEY})=(\((?:{_STRING}(?: {_STRING})*)?\)((?:;{_KEY}=(?:{_STRING}|{_INTEGER}))*))",
    re.ASCII,
)
_ITEM = re.compile(_STRING, re.ASCII)
# A 64-byte signature is 88 base64 characters, the last two "=" (canonical: §3.3.5).
_SIGNATURE = re.compile(rf"({_KEY})=:([A-Za-z0-9+/]{{86}}==):", re.ASCII)


def parse_signature_input(value: str) -> tuple[str, InnerList, str] | None:
    """``(label, inner list, its canonical text)`` of a canonical one-member
    ``Signature-Input``, or None (parse it with ``http_sfv``)."""
    match = _INPUT.fullmatch(value)
    if match is None:
        return None
    label, member, params_text = match.group(1), match.group(2), match.group(3)
    items_text = member[1 : len(member) - len(params_text) - 1]
    inner = InnerList([Item(text[1:-1]) for text in _ITEM.findall(items_text)])
    for param in _PARAM.finditer(params_text):
        key, string, integer = param.groups()
        if key in inner.params:
            return None  # a repeated key: the last wins in RFC 8941 — not canonical
        inner.params[key] = string[1:-1] if string is not None else int(integer)
    return label, inner, member


def parse_signature(value: str) -> tuple[str, bytes] | None:
    """``(label, 64 bytes)`` of a canonical one-member ``Signature``, or None."""
    match = _SIGNATURE.fullmatch(value)
    if match is None:
        return None
    raw = base64.b64decode(match.group(2), validate=True)
    # Canonical only if re-encoding gives the same text (the unused low bits of the
    # last character are zero): otherwise http_sfv decides.
    if base64.b64encode(raw).decode("ascii") != match.group(2):
        return None
    return match.group(1), raw

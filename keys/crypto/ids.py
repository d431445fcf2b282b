"""Key and device ids, unit names, and the sizes the wire fixes: plain values, no nacl.

Split from :mod:`keys.crypto.keypairs` (which re-exports every name here) so that the
domain's rules and the parsers of signed records load without libsodium: an id is
string parsing, and a record can be read and judged before any signature is checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keys.errors import KeyIdInvalid

KEY_BYTES = 32
SIGNATURE_BYTES = 64

# unit and device names: lower-case, digits and dashes, so ids are safe in paths and URLs.
# Matched with fullmatch: "$" alone also matches before a trailing "\n", which would let
# "sav/anna/1\n" through as a second spelling of an id (and a log-injection vector).
_NAME = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
_KID_RE = re.compile(rf"^({_NAME})/({_NAME})/([1-9][0-9]{{0,5}})$")
_DEVICE_RE = re.compile(rf"^({_NAME})/({_NAME})$")
_UNIT_RE = re.compile(rf"^{_NAME}$")


MAX_KEY_VERSION = 999_999  # the kid grammar allows at most six digits


def is_valid_name(name: str) -> bool:
    """True for a unit or device name (lower-case letters, digits, inner dashes)."""
    return bool(_UNIT_RE.fullmatch(name))


def _is_name(value: object) -> bool:
    return isinstance(value, str) and is_valid_name(value)


@dataclass(frozen=True, order=True)
class DeviceId:
    """A device of a unit: ``unit/name`` (e.g. ``so-nordost/anna``)."""

    unit: str
    name: str

    def __post_init__(self) -> None:
        # Validated on construction too, not only in parse(): ids become file names,
        # URL segments and log fields, so "../x" or "A\n" must not exist as a DeviceId.
        if not (_is_name(self.unit) and _is_name(self.name)):
            raise KeyIdInvalid("device id must look like unit/name")

    @classmethod
    def parse(cls, text: str) -> DeviceId:
        m = _DEVICE_RE.fullmatch(text)
        if not m:
            raise KeyIdInvalid("device id must look like unit/name")
        return cls(m.group(1), m.group(2))

    def key(self, version: int) -> KeyId:
        return KeyId(self.unit, self.name, version)

    def __str__(self) -> str:
        return f"{self.unit}/{self.name}"


@dataclass(frozen=True, order=True)
class KeyId:
    """A versioned key id ``unit/device/version`` (e.g. ``so-nordost/anna/3``)."""

    unit: str
    name: str
    version: int

    def __post_init__(self) -> None:
        # Same grammar as parse() (see DeviceId): a KeyId built in code is a valid kid.
        if not (
            _is_name(self.unit)
            and _is_name(self.name)
            and type(self.version) is int
            and 1 <= self.version <= MAX_KEY_VERSION
        ):
            raise KeyIdInvalid("key id must look like unit/device/version")

    @classmethod
    def parse(cls, text: str) -> KeyId:
        m = _KID_RE.fullmatch(text)
        if not m:
            raise KeyIdInvalid("key id must look like unit/device/version")
        return cls(m.group(1), m.group(2), int(m.group(3)))

    @property
    def device(self) -> DeviceId:
        return DeviceId(self.unit, self.name)

    def __str__(self) -> str:
        return f"{self.unit}/{self.name}/{self.version}"

"""One key-directory entry: its wire form, its signed bytes, its hash, its body shape.

The format is fixed in ``docs/protocol.md`` ("Key directory") and
``schemas/directory-entry.json``. This module checks *shape* only (types, sizes, key
material); whether an entry is allowed in the current state is ``keys.protocol.directory``'s job.

Threats defended here:
- a body that parses two ways: every field set is exact (no extra or missing keys) and
  ``from_json`` → ``to_json`` is the identity, so one entry has exactly one hash;
- malformed or malicious key material (wrong size, low-order X25519 point, non-canonical
  Ed25519 point) is refused by the typed key constructors in ``keys.crypto.keypairs``;
- an entry changed after it was verified: the body is copied into a read-only mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, TypeGuard

from keys.crypto.canonical import NotCanonical, b64d, canonical_json, hash32
from keys.crypto.keypairs import (
    SIGNATURE_BYTES,
    DeviceId,
    EncryptionPublicKey,
    KeyId,
    VerifyKey,
    is_valid_name,
)
from keys.errors import DirectoryEntryInvalid, KeyIdInvalid, KeyInvalid
from keys.protocol.signed_document import SignedDocument

ENTRY_VERSION = 1
SIG_DOMAIN = b"stafett/v1/dir"
HASH_PERSON = b"stafett.dir"
ZERO_HASH = bytes(32)
ADMIN_UNIT = "admin"  # reserved unit name for security-admin key ids

ENTRY_TYPES = frozenset(
    {
        "add_admin",
        "remove_admin",
        "create_unit",
        "enrol_device",
        "rotate_device",
        "revoke_device",
        "destroy_key",
        "set_min_encryption_version",
    }
)
UNIT_KINDS = frozenset({"sav", "district", "socialjour", "las", "other"})
DEVICE_ROLES = frozenset({"officer", "integration"})
# A controlled vocabulary, not free text: the directory is copied to every device and to
# the gateway, so a free-text reason could carry personal data ("on sick leave").
REVOKE_REASONS = frozenset(
    {"lost", "stolen", "compromised", "decommissioned", "staff_left", "other"}
)
MAX_VERSION = 999_999  # the kid grammar allows at most six digits
MAX_DISPLAY_NAME = 120
_MAX_INT = 2**53 - 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ENTRY_FIELDS = frozenset({"v", "seq", "prev_hash", "type", "body", "signer", "created", "sig"})
_BODY_FIELDS: Mapping[str, frozenset[str]] = {
    "add_admin": frozenset({"admin", "verify_key"}),
    "remove_admin": frozenset({"admin"}),
    "create_unit": frozenset({"unit", "kind", "name"}),
    "enrol_device": frozenset(
        {"device", "version", "verify_key", "encryption_key", "role", "contact"}
    ),
    "rotate_device": frozenset(
        {"device", "version", "verify_key", "encryption_key", "min_encryption_version"}
    ),
    "revoke_device": frozenset({"device", "reason"}),
    "destroy_key": frozenset({"device", "version"}),
    "set_min_encryption_version": frozenset({"device", "min_encryption_version"}),
}


def _invalid(message: str) -> DirectoryEntryInvalid:
    return DirectoryEntryInvalid(message)


def is_int(value: object) -> TypeGuard[int]:
    """True for a JSON integer (``bool`` is an ``int`` in Python, but not in JSON)."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_admin_kid(value: object) -> KeyId:
    if not isinstance(value, str):
        raise _invalid("admin key id must be a string")
    try:
        kid = KeyId.parse(value)
    except KeyIdInvalid as exc:
        raise _invalid("admin key id must look like admin/name/version") from exc
    if kid.unit != ADMIN_UNIT:
        raise _invalid("admin key id must be in the reserved unit 'admin'")
    return kid


def parse_device_id(value: object) -> DeviceId:
    if not isinstance(value, str):
        raise _invalid("device id must be a string")
    try:
        device = DeviceId.parse(value)
    except KeyIdInvalid as exc:
        raise _invalid("device id must look like unit/name") from exc
    # A device in the admin unit would make an admin kid and a device kid the same string.
    if device.unit == ADMIN_UNIT:
        raise _invalid("the unit name 'admin' is reserved")
    return device


def _version(value: object, what: str = "version") -> int:
    if not is_int(value) or not 1 <= value <= MAX_VERSION:
        raise _invalid(f"{what} must be an integer from 1 to {MAX_VERSION}")
    return value


def _verify_key(value: object) -> VerifyKey:
    if not isinstance(value, str):
        raise _invalid("verify_key must be base64 text")
    try:
        return VerifyKey.from_b64(value)
    except KeyInvalid as exc:
        raise _invalid(f"verify_key refused: {exc}") from exc


def _encryption_key(value: object) -> EncryptionPublicKey:
    if not isinstance(value, str):
        raise _invalid("encryption_key must be base64 text")
    try:
        return EncryptionPublicKey.from_b64(value)
    except KeyInvalid as exc:
        raise _invalid(f"encryption_key refused: {exc}") from exc


def _display_name(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_DISPLAY_NAME:
        raise _invalid(f"display name must be 1 to {MAX_DISPLAY_NAME} characters")
    # Control characters could rewrite an admin's terminal when `show` prints the name.
    if not value.isprintable() or value != value.strip():
        raise _invalid("display name must be printable without surrounding spaces")
    return value


def _unit_name(value: object) -> str:
    # The kid grammar's name rule, so a unit name is exactly what a kid can hold.
    if not isinstance(value, str) or not is_valid_name(value):
        raise _invalid("unit name must be lower-case letters, digits and inner dashes")
    return value


@dataclass(frozen=True)
class AdminBody:
    admin: KeyId
    verify_key: VerifyKey | None  # None for remove_admin


@dataclass(frozen=True)
class UnitBody:
    unit: str
    kind: str
    name: str


@dataclass(frozen=True)
class DeviceKeysBody:
    """enrol_device and rotate_device: one new key version of a device."""

    device: DeviceId
    version: int
    verify_key: VerifyKey
    encryption_key: EncryptionPublicKey
    role: str | None  # enrol only
    contact: bool | None  # enrol only
    min_encryption_version: int | None  # rotate only


@dataclass(frozen=True)
class DeviceActionBody:
    """revoke_device and destroy_key."""

    device: DeviceId
    reason: str | None  # revoke only
    version: int | None  # destroy only


@dataclass(frozen=True)
class MinVersionBody:
    """set_min_encryption_version: raise a device's minimum without a rotation."""

    device: DeviceId
    min_encryption_version: int


Body = AdminBody | UnitBody | DeviceKeysBody | DeviceActionBody | MinVersionBody


def parse_body(type_: str, body: Mapping[str, Any]) -> Body:
    """Check the body of an entry of ``type_`` and return its typed form."""
    expected = _BODY_FIELDS.get(type_)
    if expected is None:
        raise _invalid("unknown entry type")
    if set(body) != expected:
        raise _invalid(f"{type_} body must have exactly the fields {sorted(expected)}")
    if type_ == "add_admin":
        return AdminBody(parse_admin_kid(body["admin"]), _verify_key(body["verify_key"]))
    if type_ == "remove_admin":
        return AdminBody(parse_admin_kid(body["admin"]), None)
    if type_ == "create_unit":
        kind = body["kind"]
        if kind not in UNIT_KINDS:
            raise _invalid(f"unit kind must be one of {sorted(UNIT_KINDS)}")
        unit = _unit_name(body["unit"])
        if unit == ADMIN_UNIT:
            raise _invalid("the unit name 'admin' is reserved")
        return UnitBody(unit, str(kind), _display_name(body["name"]))
    if type_ in ("enrol_device", "rotate_device"):
        device = parse_device_id(body["device"])
        version = _version(body["version"])
        verify_key = _verify_key(body["verify_key"])
        encryption_key = _encryption_key(body["encryption_key"])
        if type_ == "enrol_device":
            # Version 1 for a new device; the next version for one enrolled again after a
            # revocation (keys.protocol.directory decides which applies).
            if body["role"] not in DEVICE_ROLES:
                raise _invalid(f"role must be one of {sorted(DEVICE_ROLES)}")
            if not isinstance(body["contact"], bool):
                raise _invalid("contact must be true or false")
            return DeviceKeysBody(
                device,
                version,
                verify_key,
                encryption_key,
                str(body["role"]),
                body["contact"],
                None,
            )
        if version < 2:
            raise _invalid("a rotation starts at version 2")
        minimum = _version(body["min_encryption_version"], "min_encryption_version")
        return DeviceKeysBody(device, version, verify_key, encryption_key, None, None, minimum)
    device = parse_device_id(body["device"])
    if type_ == "set_min_encryption_version":
        minimum = _version(body["min_encryption_version"], "min_encryption_version")
        return MinVersionBody(device, minimum)
    if type_ == "revoke_device":
        if body["reason"] not in REVOKE_REASONS:
            raise _invalid(f"reason must be one of {sorted(REVOKE_REASONS)}")
        return DeviceActionBody(device, str(body["reason"]), None)
    return DeviceActionBody(device, None, _version(body["version"]))


def _freeze_body(body: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise _invalid("body must be an object")
    copied = dict(body)
    for key, value in copied.items():
        # Bodies are flat: nested containers would stay mutable and change the hash later.
        if not isinstance(key, str) or not (
            value is None or isinstance(value, str | bool) or is_int(value)
        ):
            raise _invalid("body must be a flat object of strings, integers and booleans")
    return MappingProxyType(copied)


@dataclass(frozen=True)
class DirectoryEntry(SignedDocument):
    """One signed entry of the key directory (``v`` is always 1 on the wire)."""

    SIG_DOMAIN: ClassVar[bytes] = SIG_DOMAIN

    seq: int
    prev_hash: bytes
    type: str
    body: Mapping[str, Any] = field(hash=False)
    signer: KeyId
    created: int
    sig: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", _freeze_body(self.body))

    def unsigned_json(self) -> dict[str, Any]:
        return {
            "v": ENTRY_VERSION,
            "seq": self.seq,
            "prev_hash": self.prev_hash.hex(),
            "type": self.type,
            "body": dict(self.body),
            "signer": str(self.signer),
            "created": self.created,
        }

    def signed_bytes(self) -> bytes:
        """What the admin signs: the domain prefix, then the entry without ``sig``."""
        try:
            return SIG_DOMAIN + canonical_json(self.unsigned_json())
        except NotCanonical as exc:
            raise _invalid("entry is not expressible as canonical JSON") from exc

    def hash(self) -> bytes:
        """The entry hash that the next entry's ``prev_hash`` and checkpoints refer to."""
        try:
            return hash32(canonical_json(self.to_json()), HASH_PERSON)
        except NotCanonical as exc:
            raise _invalid("entry is not expressible as canonical JSON") from exc

    def parsed_body(self) -> Body:
        return parse_body(self.type, self.body)

    def check_shape(self) -> None:
        """Refuse an entry whose fields are out of range (also when built in code)."""
        if not is_int(self.seq) or not 0 <= self.seq <= _MAX_INT:
            raise _invalid("seq must be a non-negative integer")
        if not isinstance(self.prev_hash, bytes) or len(self.prev_hash) != 32:
            raise _invalid("prev_hash must be 32 bytes")
        if self.type not in ENTRY_TYPES:
            raise _invalid("unknown entry type")
        if not isinstance(self.signer, KeyId) or self.signer.unit != ADMIN_UNIT:
            raise _invalid("signer must be an admin key id")
        if not is_int(self.created) or not 0 <= self.created <= _MAX_INT:
            raise _invalid("created must be a non-negative integer (Unix seconds)")
        if not isinstance(self.sig, bytes) or len(self.sig) != SIGNATURE_BYTES:
            raise _invalid("sig must be 64 bytes")
        self.parsed_body()

    @classmethod
    def from_json(cls, obj: Any) -> DirectoryEntry:
        """Build an entry from parsed JSON, refusing anything that is not exactly the format."""
        if not isinstance(obj, dict):
            raise _invalid("entry must be a JSON object")
        if set(obj) != _ENTRY_FIELDS:
            raise _invalid(f"entry must have exactly the fields {sorted(_ENTRY_FIELDS)}")
        if obj["v"] != ENTRY_VERSION or not is_int(obj["v"]):
            raise _invalid("unsupported entry version")
        prev = obj["prev_hash"]
        if not isinstance(prev, str) or not _HEX64.fullmatch(prev):
            raise _invalid("prev_hash must be 64 lower-case hex characters")
        sig = obj["sig"]
        if not isinstance(sig, str):
            raise _invalid("sig must be base64 text")
        try:
            sig_bytes = b64d(sig, size=SIGNATURE_BYTES)
        except NotCanonical as exc:
            raise _invalid("sig must be canonical base64 of 64 bytes") from exc
        if not isinstance(obj["type"], str):
            raise _invalid("type must be a string")
        if not isinstance(obj["body"], dict):
            raise _invalid("body must be an object")
        entry = cls(
            seq=obj["seq"],
            prev_hash=bytes.fromhex(prev),
            type=obj["type"],
            body=obj["body"],
            signer=parse_admin_kid(obj["signer"]),
            created=obj["created"],
            sig=sig_bytes,
        )
        entry.check_shape()
        return entry

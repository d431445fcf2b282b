"""The envelope header ``H``: a typed, validated view of the canonical JSON.

Every field is bound into the signature and into each wrapped key (``hH ‖ K``), so a
header that parses here is the only header an envelope can carry: the gateway routes
and checks consent on exactly these bytes. ``schemas/envelope-header.json`` states the
same rules for other implementations; the tests check that both agree.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from keys.crypto.canonical import NotCanonical, canonical_json, hash32, parse_canonical
from keys.crypto.keypairs import KeyId, is_valid_name
from keys.errors import EnvelopeHeaderInvalid, KeyIdInvalid

VERSION = 1  # the header version without a key commitment (envelope v1)
VERSIONS = (1, 2)  # v2: the same fields plus "key_commitment"
CHUNK_BYTES = 65536  # plaintext bytes per secretstream chunk (fixed in v1 and v2)
PAD_SCHEME = "padme"
MAX_HEADER_BYTES = 16 * 1024
MAX_RECIPIENTS = 64  # keeps W far below its 64 KiB limit (≈ 300 bytes per entry)
_MAX_INT = 2**53 - 1

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEX32_RE = re.compile(r"^[0-9a-f]{64}$")
_TERM_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # vocabulary codes are snake_case
_CONSENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_KEYS = frozenset(
    {
        "v",
        "message_id",
        "sender",
        "recipient_unit",
        "recipients",
        "consent_id",
        "subject_ref",
        "category",
        "purpose",
        "created",
        "expires",
        "body",
        "checkpoint",
        "in_reply_to",
    }
)
_KEYS_V2 = _KEYS | {"key_commitment"}


def _bad(field: str, why: str) -> EnvelopeHeaderInvalid:
    # Name the field, never echo its value: it may be a subject reference.
    return EnvelopeHeaderInvalid(f"header field {field!r} {why}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kid(value: object, field: str) -> KeyId:
    if isinstance(value, KeyId):
        return value
    if not isinstance(value, str):
        raise _bad(field, "must be a key id string")
    try:
        return KeyId.parse(value)
    except KeyIdInvalid as exc:
        raise _bad(field, "is not a key id") from exc


@dataclass(frozen=True)
class EnvelopeHeader:
    """Typed view of ``H``. Constructing one validates it; recipients are kept sorted."""

    message_id: str
    sender: KeyId
    recipient_unit: str
    recipients: tuple[KeyId, ...]
    consent_id: str
    # Out of repr: a logged header (or a VerifiedEnvelope/OpenedEnvelope holding one)
    # must not link log lines to one person (TEAM.md: no subject references in logs).
    subject_ref: str = dataclasses.field(repr=False)
    category: str
    purpose: str
    created: int
    expires: int
    checkpoint_size: int
    checkpoint_head: str
    in_reply_to: str | None
    # v2 only: hex of the commitment to the content key K, filled in by ``seal`` (the
    # caller builds the header without it: K does not exist yet). None: a v1 header.
    key_commitment: str | None = None

    @property
    def version(self) -> int:
        return 1 if self.key_commitment is None else 2

    def __post_init__(self) -> None:
        # Normalise first so that two callers listing the same recipients in another
        # order build the same header (and the same hH).
        recipients = tuple(_kid(r, "recipients") for r in self.recipients)
        object.__setattr__(self, "recipients", tuple(sorted(recipients, key=str)))
        object.__setattr__(self, "sender", _kid(self.sender, "sender"))
        self._validate()

    def _validate(self) -> None:
        for field, regex in (
            ("message_id", _UUID_RE),
            ("subject_ref", _HEX32_RE),
            ("checkpoint_head", _HEX32_RE),
            ("category", _TERM_RE),
            ("purpose", _TERM_RE),
            ("consent_id", _CONSENT_ID_RE),
        ):
            value = getattr(self, field)
            # fullmatch, not match: "$" also matches before a trailing "\n", which let
            # "<uuid>\n" or "<category>\n" through as a second spelling of a signed field.
            if not isinstance(value, str) or not regex.fullmatch(value):
                raise _bad(field, "has the wrong form")
        if self.key_commitment is not None and (
            not isinstance(self.key_commitment, str) or not _HEX32_RE.fullmatch(self.key_commitment)
        ):
            raise _bad("key_commitment", "must be 64 hex characters or absent")
        if self.in_reply_to is not None and (
            not isinstance(self.in_reply_to, str) or not _UUID_RE.fullmatch(self.in_reply_to)
        ):
            raise _bad("in_reply_to", "must be a message id or null")
        if not isinstance(self.recipient_unit, str) or not is_valid_name(self.recipient_unit):
            raise _bad("recipient_unit", "is not a unit name")
        if not 1 <= len(self.recipients) <= MAX_RECIPIENTS:
            raise _bad("recipients", f"must list 1 to {MAX_RECIPIENTS} key ids")
        names = [str(r) for r in self.recipients]
        if len(set(names)) != len(names):
            raise _bad("recipients", "lists a key id twice")
        # Threat: consent is checked for recipient_unit only; a device of another unit
        # slipped into the recipient list would read content no consent covers.
        if any(r.unit != self.recipient_unit for r in self.recipients):
            raise _bad("recipients", "must all be devices of recipient_unit")
        for field in ("created", "expires", "checkpoint_size"):
            value = getattr(self, field)
            if not _is_int(value) or not 0 <= value <= _MAX_INT:
                raise _bad(field, "must be a non-negative integer")
        if self.expires <= self.created:
            raise _bad("expires", "must be after created")
        if self.checkpoint_size < 1:
            raise _bad("checkpoint_size", "must be at least 1 (a verified directory)")

    def to_json(self) -> dict[str, Any]:
        """The header as a JSON object (the exact content of ``H``)."""
        value: dict[str, Any] = {
            "v": self.version,
            "message_id": self.message_id,
            "sender": str(self.sender),
            "recipient_unit": self.recipient_unit,
            "recipients": [str(r) for r in self.recipients],
            "consent_id": self.consent_id,
            "subject_ref": self.subject_ref,
            "category": self.category,
            "purpose": self.purpose,
            "created": self.created,
            "expires": self.expires,
            "body": {"chunk": CHUNK_BYTES, "pad": PAD_SCHEME},
            "checkpoint": {"size": self.checkpoint_size, "head": self.checkpoint_head},
            "in_reply_to": self.in_reply_to,
        }
        if self.key_commitment is not None:
            value["key_commitment"] = self.key_commitment
        return value

    @classmethod
    def from_json(cls, value: Any) -> EnvelopeHeader:
        """Validate a JSON object and build the header; refuse anything not in v1/v2 form."""
        if not isinstance(value, dict):
            raise EnvelopeHeaderInvalid("header must be a JSON object")
        version = value.get("v")
        if not _is_int(version) or version not in VERSIONS:
            raise _bad("v", "must be 1 or 2")
        if set(value) != (_KEYS_V2 if version == 2 else _KEYS):
            # Threat: an unknown field would be signed but ignored by this reader and
            # honoured by another — two readings of one signed header. A v2 header
            # without its key commitment would be a v2 envelope without key commitment.
            raise EnvelopeHeaderInvalid("header fields are missing or unknown")
        if value["body"] != {"chunk": CHUNK_BYTES, "pad": PAD_SCHEME}:
            raise _bad("body", "must be {chunk: 65536, pad: padme}")
        checkpoint = value["checkpoint"]
        if not isinstance(checkpoint, dict) or set(checkpoint) != {"size", "head"}:
            raise _bad("checkpoint", "must hold exactly size and head")
        recipients = value["recipients"]
        if not isinstance(recipients, list):
            raise _bad("recipients", "must be a list")
        header = cls(
            message_id=value["message_id"],
            sender=_kid(value["sender"], "sender"),
            recipient_unit=value["recipient_unit"],
            recipients=tuple(_kid(r, "recipients") for r in recipients),
            consent_id=value["consent_id"],
            subject_ref=value["subject_ref"],
            category=value["category"],
            purpose=value["purpose"],
            created=value["created"],
            expires=value["expires"],
            checkpoint_size=checkpoint["size"],
            checkpoint_head=checkpoint["head"],
            in_reply_to=value["in_reply_to"],
            key_commitment=value.get("key_commitment"),
        )
        # One header, one spelling: unsorted recipients or a kid like "a/b/01" that
        # parses to the same KeyId would otherwise give a second byte form.
        if header.to_json() != value:
            raise EnvelopeHeaderInvalid("header is not in its canonical form")
        return header

    @classmethod
    def from_bytes(cls, data: bytes) -> EnvelopeHeader:
        """Parse ``H`` as it appears on the wire (canonical JSON, ≤ 16 KiB)."""
        if len(data) > MAX_HEADER_BYTES:
            raise EnvelopeHeaderInvalid("header is larger than 16 KiB")
        try:
            value = parse_canonical(data)
        except NotCanonical as exc:
            raise EnvelopeHeaderInvalid("header is not canonical JSON") from exc
        return cls.from_json(value)

    def canonical(self) -> bytes:
        """The exact bytes ``H``."""
        data = canonical_json(self.to_json())
        if len(data) > MAX_HEADER_BYTES:
            raise EnvelopeHeaderInvalid("header is larger than 16 KiB")
        return data

    def hash(self) -> bytes:
        """``hH = BLAKE2b-256(H, person="stafett.hdr")``."""
        return hash32(self.canonical(), b"stafett.hdr")

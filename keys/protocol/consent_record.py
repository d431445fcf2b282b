"""Signed consent records: what the individual agreed to, signed by the recording device.

A consent record is the only ground on which anything about an individual may pass
between units (DOMAIN.md, "Consent (samtycke) is the gate"). The recording officer's
device signs it so that

- the gateway (or a database administrator) cannot widen a consent after the fact —
  add a unit pair, a category, a purpose or push the end date — without the signature
  breaking (threat: a compromised gateway manufacturing a legal ground);
- the unit that received the consent can prove later who recorded it and when.

Wire form (``schemas/consent-record.json``)::

    {"v":1, "consent_id", "subject_ref", "pairs":[{"from","to"}], "categories",
     "purposes", "valid_from", "valid_until", "form", "evidence_hash",
     "free_text_hash", "obtained_by", "obtained_at", "minor", "guardians",
     "covers_processing", "recorded_by", "created", "sig"}

The free text of an oral consent (who witnessed it, a note on when and how it was
given; the same for a guardian's) never reaches the gateway: it stays on the recording
device and in the unit's case file, and the record carries only ``free_text_hash``, a
salted hash of it (:class:`keys.crypto.consent_free_text.FreeText`), just as a written
consent carries only the hash of its signed form. The gateway cannot read a witness's
name or a note (threat: a compromised gateway or database reading case notes), yet the
recorder can later prove which text it was by showing the text and its salt.

``sig = Ed25519(recording device key, b"stafett/v1/consent" ‖ canonical(record - sig))``.

This module checks *structure* only (exact field set, types, id and hash formats).
Whether a consent is specific enough to be a consent at all — explicit pairs, known
categories and purposes, an end date within the policy maximum, evidence or the hash of
the witness and note,
guardians for a minor — is the policy's call: ``keys.domain.consent.check_specific``,
which gives every rule its own error code. That split keeps the vocabulary (which grows)
out of the signature code, and lets a recording device run the same policy before it
signs.

A withdrawal is *not* part of the signed record: the individual is not a party and
signs nothing; a party unit's device records it (authenticated request + reason code).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keys.crypto.canonical import NotCanonical, b64d, b64e, canonical_json
from keys.crypto.ids import SIGNATURE_BYTES, DeviceId, KeyId
from keys.errors import (
    ConsentRecordInvalid,
    ConsentSignatureInvalid,
    KeyIdInvalid,
    SignatureInvalid,
)

if TYPE_CHECKING:
    # Only the caller's key objects are used here (sign, verify): parsing a record and
    # judging it (keys.domain.consent) need no libsodium.
    from keys.crypto.keypairs import SigningKey, VerifyKey

CONSENT_RECORD_VERSION = 1
SIG_DOMAIN = b"stafett/v1/consent"

FORMS = frozenset({"written", "oral"})
UNSIGNED_FIELDS = frozenset(
    {
        "v",
        "consent_id",
        "subject_ref",
        "pairs",
        "categories",
        "purposes",
        "valid_from",
        "valid_until",
        "form",
        "evidence_hash",
        "free_text_hash",
        "obtained_by",
        "obtained_at",
        "minor",
        "guardians",
        "covers_processing",
        "recorded_by",
        "created",
    }
)
FIELDS = UNSIGNED_FIELDS | {"sig"}
GUARDIAN_FIELDS = frozenset({"form", "evidence_hash", "free_text_hash"})

# Size limits: a consent is a short statement; bounds keep a hostile record from
# costing the gateway memory or filling its database.
MAX_PAIRS = 64
MAX_TERMS = 64
MAX_TERM_CHARS = 64
MAX_GUARDIANS = 4

_MAX_INT = 2**53 - 1
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ConsentPair:
    """One directed exchange the individual allowed: ``from_unit`` may send to ``to_unit``."""

    from_unit: str
    to_unit: str


@dataclass(frozen=True)
class GuardianConsent:
    """A guardian's (vårdnadshavare) consent for a minor, documented like the main one."""

    form: str
    evidence_hash: str | None
    free_text_hash: str | None


@dataclass(frozen=True)
class ConsentRecord:
    """A structurally valid consent record (not yet judged specific by policy).

    ``subject_ref`` is a pseudonym; ``repr`` still leaves it out so that a logged record
    does not link log lines to one person.
    """

    consent_id: str
    subject_ref: str
    pairs: tuple[ConsentPair, ...]
    categories: tuple[str, ...]
    purposes: tuple[str, ...]
    valid_from: int
    valid_until: int | None
    form: str
    evidence_hash: str | None
    free_text_hash: str | None
    obtained_by: DeviceId
    obtained_at: int
    minor: bool
    guardians: tuple[GuardianConsent, ...]
    covers_processing: bool
    recorded_by: KeyId
    created: int
    sig: bytes | None = None

    @property
    def parties(self) -> frozenset[str]:
        """Every unit named on either side of a pair."""
        return frozenset(u for p in self.pairs for u in (p.from_unit, p.to_unit))

    def unsigned_json(self) -> dict[str, Any]:
        return {
            "v": CONSENT_RECORD_VERSION,
            "consent_id": self.consent_id,
            "subject_ref": self.subject_ref,
            "pairs": [{"from": p.from_unit, "to": p.to_unit} for p in self.pairs],
            "categories": list(self.categories),
            "purposes": list(self.purposes),
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "form": self.form,
            "evidence_hash": self.evidence_hash,
            "free_text_hash": self.free_text_hash,
            "obtained_by": str(self.obtained_by),
            "obtained_at": self.obtained_at,
            "minor": self.minor,
            "guardians": [
                {
                    "form": g.form,
                    "evidence_hash": g.evidence_hash,
                    "free_text_hash": g.free_text_hash,
                }
                for g in self.guardians
            ],
            "covers_processing": self.covers_processing,
            "recorded_by": str(self.recorded_by),
            "created": self.created,
        }

    def to_json(self) -> dict[str, Any]:
        obj = self.unsigned_json()
        if self.sig is None:
            raise ConsentRecordInvalid("the consent record is not signed")
        obj["sig"] = b64e(self.sig)
        return obj

    def __repr__(self) -> str:
        return f"ConsentRecord(consent_id={self.consent_id!r}, recorded_by={self.recorded_by})"


def parse_consent_record(obj: Mapping[str, Any], *, require_sig: bool = True) -> ConsentRecord:
    """Check the structure of a consent record and return it typed.

    Raises :class:`ConsentRecordInvalid` (never echoing values: a record holds a
    pseudonym and free text). ``require_sig=False`` parses an unsigned draft.
    """
    if not isinstance(obj, Mapping):
        raise ConsentRecordInvalid("a consent record is a JSON object")
    keys = set(obj)
    expected = FIELDS if require_sig else UNSIGNED_FIELDS
    if keys != expected:
        # Unknown fields are refused, not ignored: a field the verifier does not know
        # would still be covered by the signature and could mislead another reader.
        # This also refuses the clear "witness"/"note" of the earlier format: free text
        # must not reach the gateway (see free_text_hash).
        # Unknown names are counted, not echoed: they are caller-chosen text.
        missing = sorted(expected - keys)
        extra = len(keys - expected)
        raise ConsentRecordInvalid(f"consent record fields: missing {missing}, {extra} unknown")
    if type(obj["v"]) is not int or obj["v"] != CONSENT_RECORD_VERSION:
        raise ConsentRecordInvalid("unsupported consent record version")
    consent_id = obj["consent_id"]
    if not isinstance(consent_id, str) or not _UUID.fullmatch(consent_id):
        raise ConsentRecordInvalid("consent_id must be a lower-case UUID")
    subject_ref = obj["subject_ref"]
    if not isinstance(subject_ref, str) or not _HEX64.fullmatch(subject_ref):
        raise ConsentRecordInvalid("subject_ref must be 64 lower-case hex characters")
    sig: bytes | None = None
    if require_sig:
        if not isinstance(obj["sig"], str):
            raise ConsentRecordInvalid("sig must be base64")
        try:
            sig = b64d(obj["sig"], size=SIGNATURE_BYTES)
        except NotCanonical as exc:
            raise ConsentRecordInvalid("sig must be base64 of 64 bytes") from exc
    try:
        obtained_by = DeviceId.parse(_str(obj["obtained_by"], "obtained_by", 200))
        recorded_by = KeyId.parse(_str(obj["recorded_by"], "recorded_by", 200))
    except KeyIdInvalid as exc:
        raise ConsentRecordInvalid("obtained_by/recorded_by are not device/key ids") from exc
    return ConsentRecord(
        consent_id=consent_id,
        subject_ref=subject_ref,
        pairs=_pairs(obj["pairs"]),
        categories=_terms(obj["categories"], "categories"),
        purposes=_terms(obj["purposes"], "purposes"),
        valid_from=_time(obj["valid_from"], "valid_from"),
        valid_until=None
        if obj["valid_until"] is None
        else _time(obj["valid_until"], "valid_until"),
        form=_form(obj["form"]),
        evidence_hash=_hash(obj["evidence_hash"], "evidence_hash"),
        free_text_hash=_hash(obj["free_text_hash"], "free_text_hash"),
        obtained_by=obtained_by,
        obtained_at=_time(obj["obtained_at"], "obtained_at"),
        minor=_bool(obj["minor"], "minor"),
        guardians=_guardians(obj["guardians"]),
        covers_processing=_bool(obj["covers_processing"], "covers_processing"),
        recorded_by=recorded_by,
        created=_time(obj["created"], "created"),
        sig=sig,
    )


def signed_bytes(record: Mapping[str, Any]) -> bytes:
    """The exact bytes a consent signature covers (domain prefix ‖ canonical JSON)."""
    unsigned = {k: v for k, v in record.items() if k != "sig"}
    try:
        return SIG_DOMAIN + canonical_json(unsigned)
    except NotCanonical as exc:
        raise ConsentRecordInvalid("consent record is not canonical JSON") from exc


def sign_consent_record(fields: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """Sign a draft (every field but ``sig``) and return the record as plain JSON.

    ``key`` must be the signing key of ``fields["recorded_by"]``; the verifier looks the
    key up by that kid, so a mismatch only produces a record nobody accepts.
    """
    parse_consent_record(fields, require_sig=False)
    # A canonical round trip gives plain dicts/lists, detached from the caller's objects:
    # what is returned is exactly what was signed.
    try:
        plain: dict[str, Any] = json.loads(canonical_json(dict(fields)))
    except NotCanonical as exc:
        raise ConsentRecordInvalid("consent record is not canonical JSON") from exc
    plain["sig"] = b64e(key.sign(signed_bytes(plain)))
    return plain


def verify_consent_record(record: Mapping[str, Any], key: VerifyKey) -> ConsentRecord:
    """Raise unless ``record`` is well-formed and signed by ``key``; return it typed.

    ``key`` must come from the verified directory entry of ``record["recorded_by"]``
    (the caller's lookup): verifying against a key taken from the record itself would
    let anyone sign a consent.
    """
    parsed = parse_consent_record(record)
    if parsed.sig is None:  # unreachable with require_sig=True; kept for the type checker
        raise ConsentRecordInvalid("the consent record is not signed")
    try:
        key.verify(signed_bytes(record), parsed.sig)
    except SignatureInvalid as exc:
        raise ConsentSignatureInvalid() from exc
    return parsed


# --- structural helpers (messages name the field, never its value) -------------------------
def _time(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise ConsentRecordInvalid(f"{name} must be an integer Unix time")
    return value


def _opt_time(value: object, name: str) -> int | None:
    # null is structurally allowed so that policy can refuse it with its own code
    # (consent_no_end) instead of a generic "malformed".
    return None if value is None else _time(value, name)


def _bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConsentRecordInvalid(f"{name} must be true or false")
    return value


def _str(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ConsentRecordInvalid(f"{name} must be a string of at most {limit} characters")
    return value


def _form(value: object) -> str:
    # isinstance first: a list is unhashable and would raise TypeError on membership.
    if not isinstance(value, str) or value not in FORMS:
        raise ConsentRecordInvalid("form must be 'written' or 'oral'")
    return value


def _hash(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ConsentRecordInvalid(f"{name} must be 64 lower-case hex characters or null")
    return value


def _terms(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_TERMS:
        raise ConsentRecordInvalid(f"{name} must be a list of at most {MAX_TERMS} terms")
    terms = tuple(_str(t, name, MAX_TERM_CHARS) for t in value)
    if len(set(terms)) != len(terms):
        raise ConsentRecordInvalid(f"{name} lists a term twice")
    return terms


def _pairs(value: object) -> tuple[ConsentPair, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_PAIRS:
        raise ConsentRecordInvalid(f"pairs must be a list of at most {MAX_PAIRS} pairs")
    pairs: list[ConsentPair] = []
    for item in value:
        if not isinstance(item, Mapping) or set(item) != {"from", "to"}:
            raise ConsentRecordInvalid('each pair is exactly {"from": unit, "to": unit}')
        pairs.append(
            ConsentPair(
                _str(item["from"], "pairs", MAX_TERM_CHARS),
                _str(item["to"], "pairs", MAX_TERM_CHARS),
            )
        )
    if len(set(pairs)) != len(pairs):
        raise ConsentRecordInvalid("pairs lists a pair twice")
    return tuple(pairs)


def _guardians(value: object) -> tuple[GuardianConsent, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_GUARDIANS:
        raise ConsentRecordInvalid(f"guardians must be a list of at most {MAX_GUARDIANS}")
    out: list[GuardianConsent] = []
    for item in value:
        if not isinstance(item, Mapping) or set(item) != GUARDIAN_FIELDS:
            raise ConsentRecordInvalid("a guardian is {form, evidence_hash, free_text_hash}")
        out.append(
            GuardianConsent(
                form=_form(item["form"]),
                evidence_hash=_hash(item["evidence_hash"], "guardian evidence_hash"),
                free_text_hash=_hash(item["free_text_hash"], "guardian free_text_hash"),
            )
        )
    return tuple(out)

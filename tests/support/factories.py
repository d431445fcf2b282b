"""The one set of test factories: consent records, directory entry bodies, devices and
keystores. Used by the tests (through their support modules) and by ``bench/``.

Plain values only (no gateway, no HTTP, no clock read): ``now`` is a parameter, so
the domain tests can pass a literal and the live tests ``int(time.time())``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from clients.demo.base import UNITS as DEMO_UNITS
from keys.crypto.keypairs import DeviceKeyPair, KeyId, SigningKey, VerifyKey
from keys.crypto.keystore import Keystore
from keys.protocol.consent_record import sign_consent_record

__all__ = [
    "DAY",
    "EVIDENCE",
    "OTHER_SUBJECT",
    "ROOT_ADMIN",
    "SUBJECT",
    "UNIT_NAMES",
    "admin_keystore",
    "consent_draft",
    "device",
    "device_keystore",
    "enrol_body",
    "enrol_pair",
    "signed_consent",
    "unit_name",
]

DAY = 86_400
# The units' names as a security admin signs them into ``create_unit`` entries: the
# city's own names, the same table ``make demo`` uses; what the CLI and web inbox show.
UNIT_NAMES = {unit: name for unit, (_kind, name) in DEMO_UNITS.items()}
SUBJECT = "ab" * 32
OTHER_SUBJECT = "cd" * 32
EVIDENCE = "ef" * 32
ROOT_ADMIN = KeyId.parse("admin/root/1")


def unit_name(unit: str) -> str:
    return UNIT_NAMES.get(unit, unit.upper())


# What the SDK fills in itself when it records a consent (``consent_fields`` drops them).
RECORDER_FIELDS = ("v", "consent_id", "recorded_by", "created")


def consent_draft(
    *,
    now: int,
    consent_id: str,
    recorder: str,
    between: Iterable[tuple[str, str]],
    categories: Iterable[str],
    purposes: Iterable[str],
    subject: str = SUBJECT,
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An unsigned, specific, written consent recorded by ``recorder`` (a kid) for the
    unit pairs ``between`` (from, to), valid from an hour before ``now`` for 90 days.
    ``fields`` replace wire fields as they are (a test makes it invalid on purpose so)."""
    draft: dict[str, Any] = {
        "v": 1,
        "consent_id": consent_id,
        "subject_ref": subject,
        "pairs": [{"from": a, "to": b} for a, b in between],
        "categories": list(categories),
        "purposes": list(purposes),
        "valid_from": now - 3600,
        "valid_until": now + 90 * DAY,
        "form": "written",
        "evidence_hash": EVIDENCE,
        "free_text_hash": None,
        "obtained_by": str(KeyId.parse(recorder).device),
        "obtained_at": now - 7200,
        "minor": False,
        "guardians": [],
        "covers_processing": True,
        "recorded_by": recorder,
        "created": now - 60,
    }
    draft.update(fields or {})
    return draft


def signed_consent(draft: Mapping[str, Any], recorder: DeviceKeyPair) -> dict[str, Any]:
    """``draft`` signed by its recording device, as the API accepts it."""
    return sign_consent_record(dict(draft), recorder.signing_key)


def device(kid: str) -> DeviceKeyPair:
    """A fresh key pair for ``kid`` (``unit/officer/version``)."""
    return DeviceKeyPair.generate(KeyId.parse(kid))


def enrol_body(
    device_id: str, verify_key: str, encryption_key: str, *, version: int = 1
) -> dict[str, Any]:
    """The body of an ``enrol_device`` entry for an officer's device (keys in base64)."""
    return {
        "device": device_id,
        "version": version,
        "verify_key": verify_key,
        "encryption_key": encryption_key,
        "role": "officer",
        "contact": False,
    }


def enrol_pair(pair: DeviceKeyPair) -> dict[str, Any]:
    """:func:`enrol_body` for a key pair held by the test."""
    return enrol_body(
        str(pair.kid.device),
        pair.signing_key.verify_key.b64(),
        pair.encryption_key.public_key.b64(),
        version=pair.kid.version,
    )


def device_keystore(pair: DeviceKeyPair, admin_key: VerifyKey) -> Keystore:
    """A device's keystore as provisioning leaves it: its keys and the pinned root admin."""
    return Keystore(
        owner=str(pair.kid.device),
        keypairs={pair.kid.version: pair},
        pinned_admins={str(ROOT_ADMIN): admin_key},
    )


def admin_keystore(admin_key: SigningKey) -> Keystore:
    """The root admin's keystore (what ``stafett-keys`` keeps in its directory)."""
    return Keystore(
        owner=str(ROOT_ADMIN),
        admin_key=admin_key,
        pinned_admins={str(ROOT_ADMIN): admin_key.verify_key},
    )

"""Stafett key material: the only package that imports ``nacl``.

The public API is what this module exports; the submodules are implementation detail
that other packages may still import directly when they need a narrower surface.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keys.crypto.canonical import canonical_json, hash32
    from keys.crypto.keypairs import (
        DeviceId,
        DeviceKeyPair,
        DevicePublicKeys,
        EncryptionPrivateKey,
        EncryptionPublicKey,
        KeyId,
        SigningKey,
        VerifyKey,
    )
    from keys.crypto.keystore import KdfCost, Keystore, load_keystore, save_keystore
    from keys.crypto.subject import PersonalIdentityNumber, parse_personnummer, subject_reference
    from keys.errors import KeysError
    from keys.protocol.checkpoint import Checkpoint
    from keys.protocol.directory import Directory, DirectoryEntry, make_entry
    from keys.protocol.enrolment import EnrolmentRequest, make_enrolment_request
    from keys.protocol.envelope import (
        EnvelopeHeader,
        OpenedEnvelope,
        SealResult,
        VerifiedEnvelope,
        open_envelope,
        read_header,
        seal,
        verify_envelope,
    )

# Loaded on first use (PEP 562), not at ``import keys``: a module that needs only
# ``keys.errors`` or the domain's refusals must not pull in crypto (and nacl) through
# this package's ``__init__``. ``from keys import seal`` still works the same.
_SOURCE: dict[str, str] = {
    "Checkpoint": "keys.protocol.checkpoint",
    "DeviceId": "keys.crypto.keypairs",
    "DeviceKeyPair": "keys.crypto.keypairs",
    "DevicePublicKeys": "keys.crypto.keypairs",
    "Directory": "keys.protocol.directory",
    "DirectoryEntry": "keys.protocol.directory",
    "EncryptionPrivateKey": "keys.crypto.keypairs",
    "EncryptionPublicKey": "keys.crypto.keypairs",
    "EnrolmentRequest": "keys.protocol.enrolment",
    "EnvelopeHeader": "keys.protocol.envelope",
    "KdfCost": "keys.crypto.keystore",
    "KeyId": "keys.crypto.keypairs",
    "KeysError": "keys.errors",
    "Keystore": "keys.crypto.keystore",
    "OpenedEnvelope": "keys.protocol.envelope",
    "PersonalIdentityNumber": "keys.crypto.subject",
    "SealResult": "keys.protocol.envelope",
    "SigningKey": "keys.crypto.keypairs",
    "VerifiedEnvelope": "keys.protocol.envelope",
    "VerifyKey": "keys.crypto.keypairs",
    "canonical_json": "keys.crypto.canonical",
    "hash32": "keys.crypto.canonical",
    "load_keystore": "keys.crypto.keystore",
    "make_enrolment_request": "keys.protocol.enrolment",
    "make_entry": "keys.protocol.directory",
    "open_envelope": "keys.protocol.envelope",
    "parse_personnummer": "keys.crypto.subject",
    "read_header": "keys.protocol.envelope",
    "save_keystore": "keys.crypto.keystore",
    "seal": "keys.protocol.envelope",
    "subject_reference": "keys.crypto.subject",
    "verify_envelope": "keys.protocol.envelope",
}


def __getattr__(name: str) -> Any:
    source = _SOURCE.get(name)
    if source is None:
        raise AttributeError(f"module 'keys' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Checkpoint",
    "DeviceId",
    "DeviceKeyPair",
    "DevicePublicKeys",
    "Directory",
    "DirectoryEntry",
    "EncryptionPrivateKey",
    "EncryptionPublicKey",
    "EnrolmentRequest",
    "EnvelopeHeader",
    "KdfCost",
    "KeyId",
    "KeysError",
    "Keystore",
    "OpenedEnvelope",
    "PersonalIdentityNumber",
    "SealResult",
    "SigningKey",
    "VerifiedEnvelope",
    "VerifyKey",
    "canonical_json",
    "hash32",
    "load_keystore",
    "make_enrolment_request",
    "make_entry",
    "open_envelope",
    "parse_personnummer",
    "read_header",
    "save_keystore",
    "seal",
    "subject_reference",
    "verify_envelope",
]

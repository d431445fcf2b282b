"""Stafett key material: the only package that imports ``nacl``.

The public API is what this module exports; the submodules are implementation detail
that other packages may still import directly when they need a narrower surface.
"""

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

"""Stafett key material: the only package that imports ``nacl``.

The public API is what this module exports; the submodules are implementation detail
that other packages may still import directly when they need a narrower surface.
"""

from .canonical import canonical_json, hash32
from .checkpoint import Checkpoint
from .directory import Directory, DirectoryEntry, make_entry
from .enrolment import EnrolmentRequest, make_enrolment_request
from .envelope import (
    EnvelopeHeader,
    OpenedEnvelope,
    SealResult,
    VerifiedEnvelope,
    open_envelope,
    read_header,
    seal,
    verify_envelope,
)
from .errors import KeysError
from .keypairs import (
    DeviceId,
    DeviceKeyPair,
    DevicePublicKeys,
    EncryptionPrivateKey,
    EncryptionPublicKey,
    KeyId,
    SigningKey,
    VerifyKey,
)
from .keystore import KdfCost, Keystore, load_keystore, save_keystore
from .subject import PersonalIdentityNumber, parse_personnummer, subject_reference

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

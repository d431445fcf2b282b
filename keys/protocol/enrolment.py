"""Enrolment and rotation requests: a device asks an admin to publish its new keys.

Format (``docs/protocol.md``, "Enrolment request"; ``schemas/enrolment-request.json``)::

    {"v":1, "type":"enrolment_request"|"rotation_request", "device", "version",
     "verify_key", "encryption_key", "created", "sig"}

self-signed with the *new* signing key over ``"stafett/v1/enrol"`` ‖ canonical(without
sig). Threat: an admin publishing a signing key that the requester does not hold (a
typo, or someone submitting another device's public key as their own); the self-
signature is proof of possession. It says nothing about *who* made the request: the
admin must still compare the fingerprints with the officer out of band.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from keys.crypto.canonical import NotCanonical, b64d
from keys.crypto.keypairs import (
    SIGNATURE_BYTES,
    DeviceId,
    DeviceKeyPair,
    EncryptionPublicKey,
    KeyId,
    VerifyKey,
)
from keys.errors import (
    DirectoryEntryInvalid,
    DirectorySignatureInvalid,
    EnrolmentRequestInvalid,
    KeyInvalid,
    SignatureInvalid,
)
from keys.protocol.directory_entry import MAX_VERSION, is_int, parse_device_id
from keys.protocol.signed_document import SignedDocument

REQUEST_VERSION = 1
SIG_DOMAIN = b"stafett/v1/enrol"
REQUEST_TYPES = frozenset({"enrolment_request", "rotation_request"})
_FIELDS = frozenset(
    {"v", "type", "device", "version", "verify_key", "encryption_key", "created", "sig"}
)
_MAX_INT = 2**53 - 1


@dataclass(frozen=True)
class EnrolmentRequest(SignedDocument):
    SIG_DOMAIN: ClassVar[bytes] = SIG_DOMAIN

    type: str
    device: DeviceId
    version: int
    verify_key: VerifyKey
    encryption_key: EncryptionPublicKey
    created: int
    sig: bytes

    @property
    def kid(self) -> KeyId:
        return self.device.key(self.version)

    def unsigned_json(self) -> dict[str, Any]:
        return {
            "v": REQUEST_VERSION,
            "type": self.type,
            "device": str(self.device),
            "version": self.version,
            "verify_key": self.verify_key.b64(),
            "encryption_key": self.encryption_key.b64(),
            "created": self.created,
        }

    def verify_self_signature(self) -> None:
        """Raise unless the request is signed by the signing key it carries."""
        try:
            self.verify_key.verify(self.signed_bytes(), self.sig)
        except SignatureInvalid as exc:
            raise DirectorySignatureInvalid(
                "enrolment request is not signed by the key it carries"
            ) from exc

    @classmethod
    def from_json(cls, obj: Any) -> EnrolmentRequest:
        """Shape-check a parsed request (the signature is checked separately)."""
        if not isinstance(obj, dict) or set(obj) != _FIELDS:
            raise EnrolmentRequestInvalid(
                f"enrolment request must have exactly the fields {sorted(_FIELDS)}"
            )
        if obj["v"] != REQUEST_VERSION or not is_int(obj["v"]):
            raise EnrolmentRequestInvalid("unsupported enrolment request version")
        type_ = obj["type"]
        if type_ not in REQUEST_TYPES:
            raise EnrolmentRequestInvalid(f"type must be one of {sorted(REQUEST_TYPES)}")
        version = obj["version"]
        if not is_int(version) or not 1 <= version <= MAX_VERSION:
            raise EnrolmentRequestInvalid("version must be a positive integer")
        # A rotation can only be to a later version. An enrolment is version 1, or the
        # next version of a device enrolled again after a revocation (the directory
        # checks which).
        if type_ == "rotation_request" and version == 1:
            raise EnrolmentRequestInvalid("a rotation is to version 2 or more")
        created = obj["created"]
        if not is_int(created) or not 0 <= created <= _MAX_INT:
            raise EnrolmentRequestInvalid("created must be a non-negative integer")
        try:
            device = parse_device_id(obj["device"])
        except DirectoryEntryInvalid as exc:
            raise EnrolmentRequestInvalid(str(exc)) from exc
        fields = (obj["verify_key"], obj["encryption_key"], obj["sig"])
        if not all(isinstance(f, str) for f in fields):
            raise EnrolmentRequestInvalid("keys and sig must be base64 text")
        try:
            verify_key = VerifyKey.from_b64(obj["verify_key"])
            encryption_key = EncryptionPublicKey.from_b64(obj["encryption_key"])
        except KeyInvalid as exc:
            # Refused here, at the door, before an admin ever signs it into the directory.
            raise EnrolmentRequestInvalid(f"key refused: {exc}") from exc
        try:
            sig = b64d(obj["sig"], size=SIGNATURE_BYTES)
        except NotCanonical as exc:
            raise EnrolmentRequestInvalid("sig must be canonical base64 of 64 bytes") from exc
        return cls(type_, device, version, verify_key, encryption_key, created, sig)


def make_enrolment_request(
    pair: DeviceKeyPair, created: int, rotation: bool = False
) -> EnrolmentRequest:
    """Build and self-sign the request for ``pair`` (run on the device that holds it)."""
    type_ = "rotation_request" if rotation else "enrolment_request"
    public = pair.public()
    unsigned = EnrolmentRequest(
        type_,
        pair.kid.device,
        pair.kid.version,
        public.verify_key,
        public.encryption_key,
        created,
        bytes(SIGNATURE_BYTES),
    )
    # Round-trip through from_json so a request we make is one we would accept.
    EnrolmentRequest.from_json(unsigned.to_json())
    sig = pair.signing_key.sign(unsigned.signed_bytes())
    return EnrolmentRequest(
        type_,
        unsigned.device,
        unsigned.version,
        unsigned.verify_key,
        unsigned.encryption_key,
        created,
        sig,
    )

"""Signed directory checkpoints: ``(size, head)`` under a signature.

A client keeps the last checkpoint it verified and refuses any later log whose entry
``size-1`` hashes differently (``Directory.check_consistent``). That is what turns a
gateway that shows two admins' devices two different histories (a fork, e.g. one with
a revocation hidden) from undetectable into a refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from keys.crypto.canonical import NotCanonical, b64d
from keys.crypto.keypairs import SIGNATURE_BYTES, KeyId, SigningKey, VerifyKey
from keys.errors import (
    DirectoryEntryInvalid,
    DirectorySignatureInvalid,
    KeyIdInvalid,
    SignatureInvalid,
)
from keys.protocol.signed_document import SignedDocument

CHECKPOINT_VERSION = 1
SIG_DOMAIN = b"stafett/v1/ckpt"
_MAX_INT = 2**53 - 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = frozenset({"v", "size", "head", "created", "signer", "sig"})


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_INT


@dataclass(frozen=True)
class Checkpoint(SignedDocument):
    """A signed statement "the directory has ``size`` entries and this ``head``"."""

    SIG_DOMAIN: ClassVar[bytes] = SIG_DOMAIN

    size: int
    head: bytes
    created: int
    signer: KeyId
    sig: bytes

    def unsigned_json(self) -> dict[str, Any]:
        return {
            "v": CHECKPOINT_VERSION,
            "size": self.size,
            "head": self.head.hex(),
            "created": self.created,
            "signer": str(self.signer),
        }

    @classmethod
    def sign(
        cls, size: int, head: bytes, signer: KeyId, key: SigningKey, created: int
    ) -> Checkpoint:
        unsigned = cls(size, head, created, signer, bytes(SIGNATURE_BYTES))
        unsigned.check_shape()
        return cls(size, head, created, signer, key.sign(unsigned.signed_bytes()))

    def verify(self, key: VerifyKey) -> None:
        """Raise :class:`DirectorySignatureInvalid` unless ``key`` signed this checkpoint."""
        try:
            key.verify(self.signed_bytes(), self.sig)
        except SignatureInvalid as exc:
            raise DirectorySignatureInvalid("checkpoint signature does not verify") from exc

    def check_shape(self) -> None:
        if not _is_count(self.size) or not _is_count(self.created):
            raise DirectoryEntryInvalid("checkpoint size and created must be integers ≥ 0")
        if not isinstance(self.head, bytes) or len(self.head) != 32:
            raise DirectoryEntryInvalid("checkpoint head must be 32 bytes")
        if self.size == 0 and self.head != bytes(32):
            raise DirectoryEntryInvalid("an empty directory's head is 32 zero bytes")
        if not isinstance(self.signer, KeyId):
            raise DirectoryEntryInvalid("checkpoint signer must be a key id")
        if not isinstance(self.sig, bytes) or len(self.sig) != SIGNATURE_BYTES:
            raise DirectoryEntryInvalid("checkpoint sig must be 64 bytes")

    @classmethod
    def from_json(cls, obj: Any) -> Checkpoint:
        if not isinstance(obj, dict) or set(obj) != _FIELDS:
            raise DirectoryEntryInvalid(
                f"checkpoint must have exactly the fields {sorted(_FIELDS)}"
            )
        if obj["v"] != CHECKPOINT_VERSION or isinstance(obj["v"], bool):
            raise DirectoryEntryInvalid("unsupported checkpoint version")
        head, signer, sig = obj["head"], obj["signer"], obj["sig"]
        if not isinstance(head, str) or not _HEX64.fullmatch(head):
            raise DirectoryEntryInvalid("checkpoint head must be 64 lower-case hex characters")
        if not isinstance(signer, str) or not isinstance(sig, str):
            raise DirectoryEntryInvalid("checkpoint signer and sig must be strings")
        try:
            kid = KeyId.parse(signer)
            sig_bytes = b64d(sig, size=SIGNATURE_BYTES)
        except (KeyIdInvalid, NotCanonical) as exc:
            raise DirectoryEntryInvalid("checkpoint signer or sig is malformed") from exc
        checkpoint = cls(obj["size"], bytes.fromhex(head), obj["created"], kid, sig_bytes)
        checkpoint.check_shape()
        return checkpoint

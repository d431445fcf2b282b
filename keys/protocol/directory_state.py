"""The records a verified key directory holds, and the rotation rules between them.

Rotation follows HashiCorp Vault's transit model:
- the newest version (``current_version``) is the one senders encrypt to;
- ``min_encryption_version`` says which older versions a sender with a stale directory
  may still use; the gateway refuses envelopes to anything below it;
- an older version stays ``retired`` (its private key still decrypts what is pending)
  until a ``destroy_key`` entry records that the private key was shredded;
- revocation (a lost laptop) is different: immediate, every version at once, terminal
  for those versions; the person may be enrolled again under the same device id at the
  next version (``reenrolled``), never reusing a revoked kid.

Records are frozen: the directory replaces a record instead of changing it, so a
record a caller holds is a consistent snapshot and cannot be edited behind the
verifier's back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from keys.crypto.keypairs import DeviceId, DevicePublicKeys, EncryptionPublicKey, KeyId, VerifyKey
from keys.errors import DirectoryEntryInvalid

KeyStatus = Literal["active", "retired", "destroyed", "revoked"]


@dataclass(frozen=True)
class UnitRecord:
    unit: str
    kind: str
    name: str


@dataclass(frozen=True)
class KeyVersion:
    version: int
    verify_key: VerifyKey
    encryption_key: EncryptionPublicKey
    status: KeyStatus


@dataclass(frozen=True)
class DeviceRecord:
    device: DeviceId
    role: str
    contact: bool
    revoked: bool
    versions: Mapping[int, KeyVersion] = field(hash=False)
    current_version: int
    min_encryption_version: int
    revoked_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "versions", MappingProxyType(dict(self.versions)))

    def kid(self, version: int | None = None) -> KeyId:
        return self.device.key(self.current_version if version is None else version)

    def public_keys(self, version: int | None = None) -> DevicePublicKeys:
        v = self.versions[self.current_version if version is None else version]
        return DevicePublicKeys(self.kid(v.version), v.verify_key, v.encryption_key)

    # --- transitions (each returns a new record; the caller has checked the chain) ---
    @classmethod
    def enrolled(
        cls,
        device: DeviceId,
        role: str,
        contact: bool,
        verify_key: VerifyKey,
        encryption_key: EncryptionPublicKey,
    ) -> DeviceRecord:
        first = KeyVersion(1, verify_key, encryption_key, "active")
        return cls(device, role, contact, False, {1: first}, 1, 1)

    def reenrolled(
        self,
        version: int,
        role: str,
        contact: bool,
        verify_key: VerifyKey,
        encryption_key: EncryptionPublicKey,
    ) -> DeviceRecord:
        """A revoked device enrolled again with new keys at the next version.

        The old versions stay ``revoked`` (nothing they sign is trusted, nothing is
        sealed to them); only the new version is active and the minimum encryption
        version is the new one, so no sender can seal to a lost key again.
        """
        if not self.revoked:
            raise DirectoryEntryInvalid("device already enrolled")
        if version != max(self.versions) + 1:
            raise DirectoryEntryInvalid("re-enrolment must be to exactly the next version")
        return self._with_new_version(
            dict(self.versions),
            version,
            verify_key,
            encryption_key,
            min_encryption_version=version,
            role=role,
            contact=contact,
            revoked=False,
            revoked_reason=None,
        )

    def rotated(
        self,
        version: int,
        verify_key: VerifyKey,
        encryption_key: EncryptionPublicKey,
        min_encryption_version: int,
    ) -> DeviceRecord:
        self._refuse_if_revoked()
        if version != self.current_version + 1:
            # Skipping or repeating a version would let two entries claim one kid.
            raise DirectoryEntryInvalid("rotation must be to exactly the next version")
        if not 1 <= min_encryption_version <= version:
            raise DirectoryEntryInvalid(
                "min_encryption_version must be between 1 and the new version"
            )
        if min_encryption_version < self.min_encryption_version:
            # Lowering it would let senders seal again to a key already judged too old.
            raise DirectoryEntryInvalid("min_encryption_version cannot be lowered")
        for old in self.versions.values():
            if old.status == "destroyed" and old.version >= min_encryption_version:
                raise DirectoryEntryInvalid("min_encryption_version would admit a destroyed key")
        versions = {
            v: replace(k, status="retired") if k.status == "active" else k
            for v, k in self.versions.items()
        }
        return self._with_new_version(
            versions,
            version,
            verify_key,
            encryption_key,
            min_encryption_version=min_encryption_version,
        )

    def _with_new_version(
        self,
        versions: dict[int, KeyVersion],
        version: int,
        verify_key: VerifyKey,
        encryption_key: EncryptionPublicKey,
        **changes: Any,
    ) -> DeviceRecord:
        """The record with ``version`` added as its one active, current key."""
        versions[version] = KeyVersion(version, verify_key, encryption_key, "active")
        return replace(self, versions=versions, current_version=version, **changes)

    def with_min_encryption_version(self, minimum: int) -> DeviceRecord:
        """Raise the minimum encryption version without publishing a new key.

        The step between a rotation and ``destroy_key``: once nothing pending is sealed
        to the older versions, the minimum goes up so no sender may seal to them again,
        and then they can be destroyed, without rotating a second time.
        """
        self._refuse_if_revoked()
        if minimum <= self.min_encryption_version:
            # Lowering would let senders seal again to a key already judged too old (and
            # possibly about to be destroyed); an equal value would be an empty entry.
            raise DirectoryEntryInvalid("min_encryption_version can only be raised")
        if minimum > self.current_version:
            # Above the newest version nobody could be sent anything at all.
            raise DirectoryEntryInvalid(
                "min_encryption_version cannot exceed the current key version"
            )
        return replace(self, min_encryption_version=minimum)

    def with_destroyed(self, version: int) -> DeviceRecord:
        self._refuse_if_revoked()
        key = self.versions.get(version)
        if key is None:
            raise DirectoryEntryInvalid("no such key version")
        if key.status != "retired":
            raise DirectoryEntryInvalid("only a retired key version can be destroyed")
        if version >= self.min_encryption_version:
            # Senders may still seal to it: destroying it would make those messages
            # unreadable. Raise min_encryption_version past it first (a rotation or a
            # set_min_encryption_version entry).
            raise DirectoryEntryInvalid(
                "raise min_encryption_version above a key before destroying it"
            )
        versions = dict(self.versions)
        versions[version] = replace(key, status="destroyed")
        return replace(self, versions=versions)

    def with_revoked(self, reason: str) -> DeviceRecord:
        self._refuse_if_revoked()
        versions = {
            v: k if k.status == "destroyed" else replace(k, status="revoked")
            for v, k in self.versions.items()
        }
        return replace(self, revoked=True, revoked_reason=reason, versions=versions)

    def _refuse_if_revoked(self) -> None:
        if self.revoked:
            # Revocation is terminal for the revoked versions: a replacement laptop is
            # enrolled again at the next version, so no kid that once named a lost key
            # ever names a trusted one.
            raise DirectoryEntryInvalid("the device is revoked")

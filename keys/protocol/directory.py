"""The key directory: an append-only, admin-signed log, verified incrementally.

``Directory`` is the *verified state*: it starts from the admin keys pinned when a
device (or the gateway) was provisioned and accepts entries one at a time, checking
for each the chain (``seq``, ``prev_hash``), that the signer is a current security
admin, the signature, and that the entry is allowed in the current state. Only then is
the entry applied; on any error the state is unchanged.

Threats defended here:
- a gateway (or anyone between admin and device) that edits, drops, reorders or
  inserts entries: the hash chain and the admin signatures break;
- a gateway that substitutes a device's key: it cannot sign as an admin;
- a gateway that shows different histories to different clients (fork) or rolls a
  client back (hiding a revocation): ``check_consistent`` against the last seen head;
- a removed admin (or a stolen, removed admin key) signing later entries: refused;
- key material reused across devices or versions (a revoked key re-enrolled under a new
  name, or a "rotation" to the same key): refused, every public key appears once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from keys.crypto.keypairs import SIGNATURE_BYTES, DevicePublicKeys, KeyId, SigningKey, VerifyKey
from keys.errors import (
    DirectoryBehind,
    DirectoryChainBroken,
    DirectoryEntryInvalid,
    DirectoryError,
    DirectoryForked,
    DirectoryKeyRevoked,
    DirectoryNotAdmin,
    DirectorySignatureInvalid,
    DirectoryUnknownKey,
    RecipientUnitNoDevice,
    SignatureInvalid,
)
from keys.protocol.checkpoint import Checkpoint
from keys.protocol.directory_entry import (
    ADMIN_UNIT,
    SIG_DOMAIN,
    ZERO_HASH,
    AdminBody,
    Body,
    DeviceKeysBody,
    DirectoryEntry,
    MinVersionBody,
    UnitBody,
    parse_device_id,
)
from keys.protocol.directory_state import DeviceRecord, KeyVersion, UnitRecord

Apply = Callable[[], None]

__all__ = [
    "SIG_DOMAIN",
    "Checkpoint",
    "DeviceRecord",
    "Directory",
    "DirectoryEntry",
    "KeyVersion",
    "UnitRecord",
    "make_entry",
]


class Directory:
    """Verified directory state, built entry by entry from pinned admin keys."""

    def __init__(self, pinned_admins: Mapping[str, VerifyKey]) -> None:
        if not pinned_admins:
            raise DirectoryError("at least one pinned admin key is needed")
        self._pinned: dict[str, VerifyKey] = {}
        for kid, key in pinned_admins.items():
            if KeyId.parse(kid).unit != ADMIN_UNIT or not isinstance(key, VerifyKey):
                raise DirectoryError("pinned admins must map admin key ids to verify keys")
            self._pinned[kid] = key
        self._hashes: list[bytes] = []
        self._last_created = 0
        self._admins: dict[str, VerifyKey] = {}
        # kid -> (key, first size at which it is an admin, first size at which it is not)
        self._admin_spans: dict[str, tuple[VerifyKey, int, int | None]] = {}
        self._units: dict[str, UnitRecord] = {}
        self._devices: dict[str, DeviceRecord] = {}
        self._public_keys: set[bytes] = set()
        # device kid -> (first size at which it may sign, first size at which it may not):
        # what a receipt signed at a known directory position is checked against.
        self._key_spans: dict[str, tuple[int, int | None]] = {}

    def copy(self) -> Directory:
        """An independent copy that can be appended to without touching this one.

        The state is frozen records in plain containers, so copying the containers is a
        full copy; the gateway verifies a batch on a copy and swaps it in only when the
        whole batch is valid (all-or-nothing).
        """
        clone = Directory.__new__(Directory)
        for name, value in vars(self).items():
            setattr(clone, name, value.copy() if isinstance(value, dict | list | set) else value)
        return clone

    # --- read side ----------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self._hashes)

    @property
    def head(self) -> bytes:
        return self._hashes[-1] if self._hashes else ZERO_HASH

    @property
    def last_created(self) -> int:
        """``created`` of the newest entry: a new entry must not be older."""
        return self._last_created

    @property
    def units(self) -> Mapping[str, UnitRecord]:
        return MappingProxyType(self._units)

    @property
    def devices(self) -> Mapping[str, DeviceRecord]:
        return MappingProxyType(self._devices)

    @property
    def admins(self) -> Mapping[str, VerifyKey]:
        return MappingProxyType(self._admins)

    def entry_hash(self, index: int) -> bytes:
        """Hash of entry ``index`` (0-based), as verified."""
        return self._hashes[index]

    def signing_key(self, kid: KeyId) -> VerifyKey:
        """The verify key of a device key version that may still be trusted to sign."""
        record = self._devices.get(str(kid.device))
        if record is None or kid.version not in record.versions:
            raise DirectoryUnknownKey("no such device key in the directory")
        status = record.versions[kid.version].status
        if record.revoked or status == "revoked":
            # A lost laptop's key may be used by whoever found it.
            raise DirectoryKeyRevoked("the device's keys are revoked")
        if status == "destroyed":
            raise DirectoryUnknownKey("that key version was destroyed")
        return record.versions[kid.version].verify_key

    def signing_key_at(self, kid: KeyId, size: int) -> VerifyKey:
        """The verify key of ``kid`` if it could sign in the state after ``size`` entries.

        A receipt stays proof of a handover after its signer is revoked or its key
        rotated and destroyed: it is checked against the directory as it stood when it
        was signed, not as it stands now. Threat: a key revoked *before* ``size`` (the
        finder of a lost laptop signing a late "receipt") is refused here as at any
        time; only the position, never the key, comes from the caller.
        """
        span = self._key_spans.get(str(kid))
        record = self._devices.get(str(kid.device))
        if span is None or record is None or not 0 <= size <= self.size:
            raise DirectoryUnknownKey("no such device key in the directory at that position")
        start, end = span
        if size < start:
            raise DirectoryUnknownKey("that key was not yet in the directory at that position")
        if end is not None and size >= end:
            if record.versions[kid.version].status == "destroyed":
                raise DirectoryUnknownKey("that key version was destroyed at that position")
            raise DirectoryKeyRevoked("the device's keys were revoked at that position")
        return record.versions[kid.version].verify_key

    def encryption_keys(
        self, unit: str, devices: Sequence[str] | None = None
    ) -> list[DevicePublicKeys]:
        """Current keys to seal to: every non-revoked device of ``unit``, or the named ones.

        ``devices`` holds device ids (``unit/name``) or bare names within ``unit``. A named
        device that is unknown, in another unit or revoked is an error, not silently
        skipped: the sender must not believe a revoked officer received the message.
        """
        if unit not in self._units:
            raise DirectoryUnknownKey("no such unit in the directory")
        if devices is None:
            records = [r for r in self._devices.values() if r.device.unit == unit and not r.revoked]
            if not records:
                # Its own code, not an envelope with no recipients: the sender must learn
                # that the unit has nobody to read it (every device revoked or none yet).
                raise RecipientUnitNoDevice("the recipient unit has no active device")
        else:
            records = []
            for text in devices:
                device = parse_device_id(text if "/" in text else f"{unit}/{text}")
                record = self._devices.get(str(device))
                if record is None or device.unit != unit:
                    raise DirectoryUnknownKey("no such device in that unit")
                if record.revoked:
                    raise DirectoryKeyRevoked("the device's keys are revoked")
                if record not in records:
                    records.append(record)
        return sorted((r.public_keys() for r in records), key=lambda p: p.kid)

    def require_active_device(self, unit: str) -> None:
        """``recipient_unit_no_device`` unless ``unit`` has a device that is not revoked
        (what :meth:`encryption_keys` checks first, without building the key list)."""
        if not any(r.device.unit == unit and not r.revoked for r in self._devices.values()):
            raise RecipientUnitNoDevice("the recipient unit has no active device")

    def is_acceptable_recipient(self, kid: KeyId) -> bool:
        """May an envelope still be sealed to ``kid``? (what the gateway enforces)"""
        record = self._devices.get(str(kid.device))
        if record is None or record.revoked:
            return False
        key = record.versions.get(kid.version)
        return (
            key is not None
            and key.status in ("active", "retired")
            and kid.version >= record.min_encryption_version
        )

    # --- fork detection -------------------------------------------------------------------
    def check_consistent(self, checkpoint_size: int, checkpoint_head: bytes) -> None:
        """Refuse this history if it disagrees with a head seen before.

        Raises :class:`DirectoryForked` if our entry ``size-1`` hashes differently (or
        the head of an empty directory is not zero), and :class:`DirectoryBehind` if the
        checkpoint is longer than what we verified: sync first. A client that keeps its
        last head and finds the synced log *shorter* must treat that as a fork (a
        rollback that hides entries), which is what ``DirectoryBehind`` after a full
        sync means.
        """
        if checkpoint_size < 0 or len(checkpoint_head) != 32:
            raise DirectoryForked("checkpoint is malformed")
        if checkpoint_size == 0:
            if checkpoint_head != ZERO_HASH:
                raise DirectoryForked("an empty checkpoint must have a zero head")
            return
        if checkpoint_size > self.size:
            raise DirectoryBehind(
                f"checkpoint has {checkpoint_size} entries, the directory {self.size}"
            )
        if self._hashes[checkpoint_size - 1] != checkpoint_head:
            raise DirectoryForked(f"entry {checkpoint_size - 1} differs from the checkpoint")

    def verify_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Check a checkpoint's signature, then that it is consistent with this log.

        The signer must have been a security admin in the state the checkpoint
        describes (after ``size`` entries), so an admin who signed a checkpoint and was
        removed later does not invalidate it; one who was removed before cannot sign
        one. The signature is checked before consistency so that an unsigned
        checkpoint cannot raise a false fork alarm.
        """
        checkpoint.check_shape()
        key = self._admin_key_at(str(checkpoint.signer), min(checkpoint.size, self.size))
        if key is None:
            raise DirectoryNotAdmin("checkpoint signer was not a security admin at that size")
        checkpoint.verify(key)
        self.check_consistent(checkpoint.size, checkpoint.head)

    def _admin_key_at(self, kid: str, size: int) -> VerifyKey | None:
        span = self._admin_spans.get(kid)
        if span is None:
            return None
        key, start, end = span
        return key if start <= size and (end is None or size < end) else None

    def checkpoint(self, signer: KeyId, key: SigningKey, created: int) -> Checkpoint:
        return Checkpoint.sign(self.size, self.head, signer, key, created)

    # --- write side -------------------------------------------------------------------------
    def extend(self, entries: Iterable[DirectoryEntry]) -> None:
        """Append entries in order; stops at the first refused one (earlier ones stay)."""
        for entry in entries:
            self.append(entry)

    def append(self, entry: DirectoryEntry) -> None:
        """Verify ``entry`` against the current state and apply it, or raise and change nothing."""
        if not isinstance(entry, DirectoryEntry):
            raise DirectoryEntryInvalid("not a directory entry")
        where = f"entry {self.size}"
        try:
            entry.check_shape()
            body = entry.parsed_body()
        except DirectoryError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
        # Chain first: a dropped, inserted or reordered entry shows up here.
        if entry.seq != self.size:
            raise DirectoryChainBroken(f"{where}: seq is {entry.seq}")
        if entry.prev_hash != self.head:
            raise DirectoryChainBroken(f"{where}: prev_hash does not match the previous entry")
        signer_key = self._signer_key(entry, body, where)
        try:
            signer_key.verify(entry.signed_bytes(), entry.sig)
        except SignatureInvalid as exc:
            raise DirectorySignatureInvalid(f"{where}: signature does not verify") from exc
        if entry.created < self._last_created:
            # Admins sign on top of the head they hold, so time only moves forward; a
            # backdated entry (e.g. a revocation pretending to be old) is refused.
            raise DirectoryEntryInvalid(f"{where}: created is before the previous entry")
        try:
            apply = self._plan(entry.type, body)
        except DirectoryError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
        entry_hash = entry.hash()
        # Everything is checked: from here on nothing can fail half-way.
        apply()
        self._hashes.append(entry_hash)
        self._last_created = entry.created
        device = getattr(body, "device", None)
        if device is not None:
            self._track_key_spans(self._devices[str(device)])

    def _track_key_spans(self, record: DeviceRecord) -> None:
        """Open the span of a new key version, close those revoked or destroyed now."""
        for version, key in record.versions.items():
            kid = str(record.kid(version))
            span = self._key_spans.get(kid)
            if span is None:
                self._key_spans[kid] = (self.size, None)
            elif span[1] is None and key.status in ("revoked", "destroyed"):
                self._key_spans[kid] = (span[0], self.size)

    def _signer_key(self, entry: DirectoryEntry, body: Body, where: str) -> VerifyKey:
        signer = str(entry.signer)
        if self.size == 0:
            # The root of trust: entry 0 is a pinned admin adding itself with its pinned key.
            pinned = self._pinned.get(signer)
            if pinned is None:
                raise DirectoryNotAdmin(f"{where}: entry 0 is not signed by a pinned admin")
            if not (
                entry.type == "add_admin"
                and isinstance(body, AdminBody)
                and str(body.admin) == signer
                and body.verify_key == pinned
            ):
                raise DirectoryEntryInvalid(f"{where}: entry 0 must add the pinned root admin")
            return pinned
        key = self._admins.get(signer)
        if key is None:
            raise DirectoryNotAdmin(f"{where}: signer is not a current security admin")
        return key

    def _plan(self, type_: str, body: Body) -> Apply:
        """Check ``body`` against the state; return a closure that applies it."""
        if isinstance(body, AdminBody):
            return self._plan_admin(body)
        if isinstance(body, UnitBody):
            if body.unit in self._units:
                raise DirectoryEntryInvalid("unit already exists")
            record = UnitRecord(body.unit, body.kind, body.name)
            return lambda: self._units.__setitem__(body.unit, record)
        if isinstance(body, DeviceKeysBody):
            return self._plan_device_keys(body)
        current = self._devices.get(str(body.device))
        if current is None:
            raise DirectoryUnknownKey("no such device")
        if isinstance(body, MinVersionBody):  # set_min_encryption_version
            raised = current.with_min_encryption_version(body.min_encryption_version)
            return lambda: self._devices.__setitem__(str(body.device), raised)
        if body.reason is not None:  # revoke_device
            new = current.with_revoked(body.reason)
        elif body.version is not None:  # destroy_key
            new = current.with_destroyed(body.version)
        else:
            raise DirectoryEntryInvalid("device action without reason or version")
        return lambda: self._devices.__setitem__(str(body.device), new)

    def _plan_admin(self, body: AdminBody) -> Apply:
        kid = str(body.admin)
        if body.verify_key is not None:  # add_admin
            key = body.verify_key
            if kid in self._admin_spans:
                raise DirectoryEntryInvalid("admin key id already used")
            pinned = self._pinned.get(kid)
            if pinned is not None and pinned != key:
                # The provisioning-time pin outranks the log for that kid.
                raise DirectoryEntryInvalid("admin key differs from the pinned key")
            self._refuse_reused_key(bytes(key))

            def add() -> None:
                self._admins[kid] = key
                self._admin_spans[kid] = (key, self.size + 1, None)
                self._public_keys.add(bytes(key))

            return add
        if kid not in self._admins:
            raise DirectoryEntryInvalid("not a current security admin")
        if len(self._admins) == 1:
            raise DirectoryEntryInvalid("the last security admin cannot be removed")

        def remove() -> None:
            key, start, _ = self._admin_spans[kid]
            self._admin_spans[kid] = (key, start, self.size + 1)
            del self._admins[kid]

        return remove

    def _plan_device_keys(self, body: DeviceKeysBody) -> Apply:
        name = str(body.device)
        keys = (bytes(body.verify_key), bytes(body.encryption_key))
        if keys[0] == keys[1]:
            raise DirectoryEntryInvalid("signing and encryption keys must differ")
        current = self._devices.get(name)
        if body.role is not None:  # enrol_device
            if body.device.unit not in self._units:
                raise DirectoryUnknownKey("no such unit")
            if current is not None:
                # Re-enrolment after a revocation continues the device's versions (a
                # person's replacement laptop keeps the name): a kid that once named a
                # lost key never comes to name a trusted one, since versions only grow.
                new = current.reenrolled(
                    body.version,
                    body.role,
                    bool(body.contact),
                    body.verify_key,
                    body.encryption_key,
                )
            elif body.version != 1:
                raise DirectoryEntryInvalid("a new device is enrolled at version 1")
            else:
                new = DeviceRecord.enrolled(
                    body.device, body.role, bool(body.contact), body.verify_key, body.encryption_key
                )
        else:  # rotate_device
            if current is None:
                raise DirectoryUnknownKey("no such device")
            new = current.rotated(
                body.version,
                body.verify_key,
                body.encryption_key,
                body.min_encryption_version or 0,  # always set for a rotation; 0 is refused
            )
        # Checked after the device rules so "already enrolled" is reported as such.
        for raw in keys:
            self._refuse_reused_key(raw)

        def apply() -> None:
            self._devices[name] = new
            self._public_keys.update(keys)

        return apply

    def _refuse_reused_key(self, raw: bytes) -> None:
        if raw in self._public_keys:
            raise DirectoryEntryInvalid("this public key is already in the directory")


def make_entry(
    directory: Directory,
    type: str,  # the protocol's field name, shadowing the builtin on purpose
    body: Mapping[str, Any],
    signer: KeyId,
    key: SigningKey,
    created: int,
) -> DirectoryEntry:
    """Sign a new entry that continues ``directory`` (it is not appended here)."""
    unsigned = DirectoryEntry(
        seq=directory.size,
        prev_hash=directory.head,
        type=type,
        body=body,
        signer=signer,
        created=created,
        sig=bytes(SIGNATURE_BYTES),
    )
    return replace(unsigned, sig=key.sign(unsigned.signed_bytes()))

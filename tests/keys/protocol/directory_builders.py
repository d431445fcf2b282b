"""Test helpers for the key directory: an admin who signs entries on a live Directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keys.crypto.keypairs import DeviceId, DeviceKeyPair, KeyId, SigningKey
from keys.protocol.directory import Directory, DirectoryEntry, make_entry

T0 = 1_760_000_000


@dataclass
class Admin:
    kid: KeyId
    key: SigningKey

    @classmethod
    def new(cls, name: str = "root", version: int = 1) -> Admin:
        return cls(KeyId("admin", name, version), SigningKey.generate())

    def add_body(self) -> dict[str, Any]:
        return {"admin": str(self.kid), "verify_key": self.key.verify_key.b64()}


@dataclass
class Log:
    """A directory plus the entries that built it, signed by ``admin`` unless told."""

    admin: Admin
    directory: Directory
    entries: list[DirectoryEntry] = field(default_factory=list)
    now: int = T0

    @classmethod
    def start(cls, admin: Admin | None = None) -> Log:
        admin = admin or Admin.new()
        log = cls(admin, Directory({str(admin.kid): admin.key.verify_key}))
        log.add("add_admin", admin.add_body())
        return log

    @classmethod
    def with_device(cls, device: str) -> Log:
        """A log with ``device``'s unit (a district) and the device enrolled at version 1."""
        log = cls.start()
        log.unit(device.split("/")[0])
        log.enrol(device)
        return log

    def sign(self, type_: str, body: dict[str, Any], by: Admin | None = None) -> DirectoryEntry:
        by = by or self.admin
        self.now += 10
        return make_entry(self.directory, type_, body, by.kid, by.key, self.now)

    def add(self, type_: str, body: dict[str, Any], by: Admin | None = None) -> DirectoryEntry:
        entry = self.sign(type_, body, by)
        self.directory.append(entry)
        self.entries.append(entry)
        return entry

    def unit(self, unit: str = "so-nordost", kind: str = "district") -> None:
        self.add("create_unit", {"unit": unit, "kind": kind, "name": f"Unit {unit}"})

    def enrol(
        self, device: str, role: str = "officer", contact: bool = False, version: int = 1
    ) -> DeviceKeyPair:
        pair = DeviceKeyPair.generate(DeviceId.parse(device).key(version))
        self.add("enrol_device", enrol_body(pair, role, contact))
        return pair

    def rotate(self, device: str, min_version: int | None = None) -> DeviceKeyPair:
        record = self.directory.devices[device]
        version = record.current_version + 1
        pair = DeviceKeyPair.generate(DeviceId.parse(device).key(version))
        body = keys_body(pair)
        body["min_encryption_version"] = (
            record.min_encryption_version if min_version is None else min_version
        )
        self.add("rotate_device", body)
        return pair


def keys_body(pair: DeviceKeyPair) -> dict[str, Any]:
    public = pair.public()
    return {
        "device": str(pair.kid.device),
        "version": pair.kid.version,
        "verify_key": public.verify_key.b64(),
        "encryption_key": public.encryption_key.b64(),
    }


def enrol_body(pair: DeviceKeyPair, role: str = "officer", contact: bool = False) -> dict[str, Any]:
    return {**keys_body(pair), "role": role, "contact": contact}


def replay(log: Log, entries: list[DirectoryEntry] | None = None) -> Directory:
    """Verify ``entries`` (default: the whole log) from the log's pinned root admin."""
    directory = Directory({str(log.admin.kid): log.admin.key.verify_key})
    directory.extend(log.entries if entries is None else entries)
    return directory

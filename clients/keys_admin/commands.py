"""What each ``stafett-keys`` command does; ``clients.keys_admin.main`` only parses and prints.

Every mutating command follows one path (:func:`_append`): verify the whole log from the
trust root → open the admin keystore → check that this admin is current → sign one
entry → append it to the verified state (which re-checks it) → write the log and a new
checkpoint. Nothing is written if any step fails.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clients.keys_admin.show import directory_json, directory_text, verify_json, verify_text
from clients.keys_admin.store import (
    CHECKPOINT,
    KEYSTORE,
    LOG,
    TRUST_ROOT,
    CliError,
    Workspace,
    trust_root_json,
    write_json,
    write_log,
)
from keys.crypto.canonical import canonical_json
from keys.crypto.keypairs import DeviceId, KeyId, SigningKey, VerifyKey
from keys.protocol.directory import Directory, DirectoryEntry, make_entry
from keys.protocol.enrolment import EnrolmentRequest

MIN_NEW_PASSPHRASE = 12
_MAX_REQUEST = 64 << 10
Out = Callable[[str], None]


def passphrase(*, new: bool = False) -> str:
    """From ``STAFETT_PASSPHRASE`` or a prompt; never from argv (visible in ``ps``)."""
    value = os.environ.get("STAFETT_PASSPHRASE")
    if value is None:
        if not sys.stdin.isatty():
            raise CliError("no passphrase: set STAFETT_PASSPHRASE or run in a terminal")
        value = getpass.getpass("Keystore passphrase: ")
        if new and getpass.getpass("Repeat passphrase: ") != value:
            raise CliError("the passphrases differ")
    if new and len(value) < MIN_NEW_PASSPHRASE:
        raise CliError(
            f"a new keystore needs a passphrase of at least {MIN_NEW_PASSPHRASE} characters"
        )
    return value


def _now() -> int:
    return int(time.time())


def cmd_init(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    ws.root.mkdir(parents=True, exist_ok=True)
    for name in (KEYSTORE, TRUST_ROOT, LOG, CHECKPOINT):
        if ws.path(name).exists():
            raise CliError(
                f"{name} already exists in {ws.root}: refusing to start a second trust root"
            )
    kid = KeyId("admin", args.admin, 1)
    key = SigningKey.generate()
    pinned = {str(kid): key.verify_key}
    ws.create_admin_keystore(kid, key, pinned, passphrase(new=True))
    directory = Directory(pinned)
    body = {"admin": str(kid), "verify_key": key.verify_key.b64()}
    entry = make_entry(directory, "add_admin", body, kid, key, _now())
    directory.append(entry)
    write_json(ws.path(TRUST_ROOT), trust_root_json(pinned))
    write_log(ws.path(LOG), [entry])
    write_json(ws.path(CHECKPOINT), directory.checkpoint(kid, key, entry.created).to_json())
    out(f"trust root created: {kid}  fingerprint {key.verify_key.fingerprint()}")
    out(f"distribute {ws.path(TRUST_ROOT)} to devices and the gateway; keep {KEYSTORE} secret")


def _append(ws: Workspace, type_: str, body: dict[str, Any], out: Out) -> DirectoryEntry:
    verified = ws.verify()
    kid, key, pinned = ws.load_admin(passphrase())
    if pinned != ws.trust_root():
        # The keystore's pins are MAC-protected; the JSON file is not. If they differ,
        # someone changed the file (or the keystore belongs to another trust root).
        raise CliError(f"{TRUST_ROOT} differs from the admin keystore's pinned admins")
    if verified.directory.admins.get(str(kid)) != key.verify_key:
        raise CliError(f"{kid} is not a current security admin of this directory")
    created = max(_now(), verified.directory.last_created)
    entry = make_entry(verified.directory, type_, body, kid, key, created)
    verified.directory.append(entry)
    verified.entries.append(entry)
    ws.save(verified, kid, key, created)
    out(f"entry {entry.seq} ({type_}) signed by {kid}; head {verified.directory.head.hex()}")
    return entry


def _request(path: str, expected_type: str) -> EnrolmentRequest:
    # Request files travel by hand (USB stick, mail), so any JSON spelling is accepted:
    # the self-signature covers our canonical re-encoding, not the file's bytes.
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(_MAX_REQUEST + 1)
    except FileNotFoundError:
        raise CliError(f"request not found: {path}") from None
    if len(raw) > _MAX_REQUEST:
        raise CliError("request file is too large")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CliError("request is not JSON") from None
    request = EnrolmentRequest.from_json(obj)
    if request.type != expected_type:
        raise CliError(f"this is a {request.type}, expected a {expected_type}")
    request.verify_self_signature()
    return request


def _publish_hint(ws: Workspace, out: Out) -> None:
    """What makes the new entry take effect: ``keys/`` has no network on purpose (the
    admin machine may be offline); the shipped client uploads the verified log."""
    out(f"publish it now: stafett admin push-directory --keys-dir {ws.root.resolve()}")


def _print_request(request: EnrolmentRequest, out: Out) -> None:
    out(f"device {request.kid}")
    out(f"  signing fingerprint:    {request.verify_key.fingerprint()}")
    out(f"  encryption fingerprint: {request.encryption_key.fingerprint()}")
    out("  compare both with the officer (in person or by phone) before trusting them")


def cmd_unit_create(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    _append(ws, "create_unit", {"unit": args.unit, "kind": args.kind, "name": args.name}, out)


def cmd_device_enrol(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    request = _request(args.request, "enrolment_request")
    body = {
        "device": str(request.device),
        "version": request.version,
        "verify_key": request.verify_key.b64(),
        "encryption_key": request.encryption_key.b64(),
        "role": args.role,
        "contact": bool(args.contact),
    }
    _print_request(request, out)
    _append(ws, "enrol_device", body, out)
    _publish_hint(ws, out)


def cmd_device_rotate(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    request = _request(args.request, "rotation_request")
    minimum = args.min_version
    if minimum is None:
        record = ws.verify().directory.devices.get(str(request.device))
        minimum = record.min_encryption_version if record is not None else 1
    body = {
        "device": str(request.device),
        "version": request.version,
        "verify_key": request.verify_key.b64(),
        "encryption_key": request.encryption_key.b64(),
        "min_encryption_version": minimum,
    }
    _print_request(request, out)
    _append(ws, "rotate_device", body, out)
    _publish_hint(ws, out)


def cmd_device_revoke(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    device = DeviceId.parse(args.device)
    _append(ws, "revoke_device", {"device": str(device), "reason": args.reason}, out)
    _publish_hint(ws, out)
    out("once published, pending messages sealed to its keys are marked exposed and")
    out("their senders and the recipient unit are told")
    record = ws.verify().directory.devices[str(device)]
    out(
        f"to enrol the person again: stafett init --device {device} "
        f"--key-version {max(record.versions) + 1} ... (then: stafett-keys device enrol)"
    )


def cmd_device_min_version(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    device = DeviceId.parse(args.device)
    body = {"device": str(device), "min_encryption_version": args.min_version}
    _append(ws, "set_min_encryption_version", body, out)
    out(
        f"senders may no longer seal to versions below {args.min_version}; "
        "those can now be destroyed (key destroy) once nothing pending is sealed to them"
    )


def cmd_key_destroy(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    device = DeviceId.parse(args.device)
    _append(ws, "destroy_key", {"device": str(device), "version": args.version}, out)
    _publish_hint(ws, out)
    out("the device's keystore forgets that private key on its next directory sync")


def cmd_admin_keygen(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    kid = KeyId("admin", args.admin, args.version)
    pinned = ws.trust_root()
    key = SigningKey.generate()
    ws.create_admin_keystore(kid, key, pinned, passphrase(new=True))
    out(f"admin key created: {kid}  fingerprint {key.verify_key.fingerprint()}")
    out(f"ask a current admin to run: stafett-keys admin add {kid} {key.verify_key.b64()}")


def cmd_admin_add(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    kid = KeyId.parse(args.kid)
    key = VerifyKey.from_b64(args.verify_key)
    out(f"adding {kid}  fingerprint {key.fingerprint()} (compare it with the new admin)")
    _append(ws, "add_admin", {"admin": str(kid), "verify_key": key.b64()}, out)


def cmd_admin_remove(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    _append(ws, "remove_admin", {"admin": str(KeyId.parse(args.kid))}, out)


def cmd_show(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    directory = ws.verify().directory
    if args.json:
        out(json.dumps(directory_json(directory), indent=2, sort_keys=True))
    else:
        out(directory_text(directory))


def cmd_verify(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    verified = ws.verify()
    if args.json:
        out(json.dumps(verify_json(verified.directory, verified.checkpoint), sort_keys=True))
    else:
        out(verify_text(verified.directory, verified.checkpoint))


def cmd_checkpoint(ws: Workspace, args: argparse.Namespace, out: Out) -> None:
    verified = ws.verify()
    kid, key, _pinned = ws.load_admin(passphrase())
    if verified.directory.admins.get(str(kid)) != key.verify_key:
        raise CliError(f"{kid} is not a current security admin of this directory")
    checkpoint = verified.directory.checkpoint(
        kid, key, max(_now(), verified.directory.last_created)
    )
    write_json(ws.path(CHECKPOINT), checkpoint.to_json())
    out(canonical_json(checkpoint.to_json()).decode())

"""``stafett init``, ``subject-key import`` and ``directory``.

Provisioning (decided here, see docs/cli.md): a security admin hands an officer two
files out of band — ``trust-root.json`` (the pinned admin keys, from ``stafett-keys
init``) and the city subject key file (``stafett admin subject-key-new``). ``init``
takes both (``--trust-root``, ``--subject-key-file``); a device set up without the
subject key can add it later with ``stafett subject-key import FILE``. Both end up
sealed in the keystore: the subject key is a secret (it turns a pseudonym back into a
searchable identity), the pins are the device's trust anchor.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import time
from pathlib import Path
from typing import Any

from clients.cli.common import Context, sync_with_warnings
from clients.cli.render import table
from clients.cli.state import CliFailure, read_json, write_private
from clients.keys_admin.store import CliError, parse_trust_root
from keys.crypto.canonical import canonical_json
from keys.crypto.keypairs import DeviceId, DeviceKeyPair, VerifyKey
from keys.crypto.keystore import Keystore
from keys.crypto.subject import CITY_KEY_BYTES, generate_city_key
from keys.protocol.enrolment import make_enrolment_request

SUBJECT_KEY_FORMAT = "stafett-subject-key"


def read_subject_key(ctx: Context, path: Path) -> bytes:
    """``{"format": "stafett-subject-key", "v": 1, "key": b64(32 bytes)}``."""
    try:
        obj = read_json(path)
    except OSError:
        raise CliFailure(ctx.texts("file_missing", path=path)) from None
    except ValueError:
        raise CliFailure(ctx.texts("subject_key_bad", path=path)) from None
    try:
        if obj["format"] != SUBJECT_KEY_FORMAT or obj["v"] != 1:
            raise ValueError
        key = base64.b64decode(obj["key"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise CliFailure(ctx.texts("subject_key_bad", path=path)) from None
    if len(key) != CITY_KEY_BYTES:
        raise CliFailure(ctx.texts("subject_key_bad", path=path))
    return key


def write_subject_key(path: Path) -> None:
    key = generate_city_key()
    doc = {"format": SUBJECT_KEY_FORMAT, "v": 1, "key": base64.b64encode(key).decode()}
    write_private(path, canonical_json(doc) + b"\n")


def _trust_root(ctx: Context, path: Path) -> dict[str, VerifyKey]:
    try:
        return parse_trust_root(read_json(path))
    except OSError:
        raise CliFailure(ctx.texts("file_missing", path=path)) from None
    except ValueError as exc:
        raise CliFailure(ctx.texts("trust_root_bad", path=path, detail=str(exc))) from None
    except CliError as exc:
        raise CliFailure(ctx.texts("trust_root_bad", path=path, detail=str(exc))) from None


async def cmd_init(ctx: Context, args: argparse.Namespace) -> None:
    home = ctx.home
    if home.exists:
        raise CliFailure(ctx.texts("home_exists", home=home.root))
    device = DeviceId.parse(args.device)
    pins = _trust_root(ctx, Path(args.trust_root))
    subject_key = (
        read_subject_key(ctx, Path(args.subject_key_file)) if args.subject_key_file else None
    )
    gateway_key = None
    if args.gateway_key:
        gateway_key = VerifyKey.from_b64(args.gateway_key).b64()  # validated before saving
    # A person enrolled again after a revocation keeps the device name and gets the
    # next key version (the admin says which: ``stafett-keys device revoke`` prints it).
    pair = DeviceKeyPair.generate(device.key(args.key_version))
    request = make_enrolment_request(pair, int(time.time()))
    store = Keystore(
        owner=str(device),
        keypairs={pair.kid.version: pair},
        subject_key=subject_key,
        pinned_admins=pins,
    )
    request_path = (
        Path(args.request_out) if args.request_out else home.path("enrolment-request.json")
    )
    # Keystore first: a request without the private key behind it would be useless.
    home.create_keystore(store)
    config: dict[str, Any] = {"device": str(device), "gateway": home.gateway_override}
    if gateway_key:
        config["gateway_key"] = gateway_key
    home.save_config(config)
    write_private(request_path, canonical_json(request.to_json()) + b"\n")
    public = pair.public()
    ctx.out.line(ctx.texts("init_done", device=device, home=home.root))
    ctx.out.line(
        ctx.texts(
            "init_fingerprints",
            signing=public.verify_key.fingerprint(),
            encryption=public.encryption_key.fingerprint(),
        )
    )
    ctx.out.line(ctx.texts("init_next", request=request_path))
    ctx.out.emit(
        {
            "device": str(device),
            "kid": str(pair.kid),
            "request": str(request_path),
            "signing_fingerprint": public.verify_key.fingerprint(),
            "encryption_fingerprint": public.encryption_key.fingerprint(),
            "subject_key": subject_key is not None,
        }
    )


async def cmd_rotate(ctx: Context, args: argparse.Namespace) -> None:
    """New key pairs as the next version, and a rotation request for the admin.

    Decision (docs/dev/cli.md): the new version is the keystore's newest at once, so it
    signs from the next command on; until the admin has published it (``stafett-keys
    device rotate FILE``, normally at the same desk, comparing fingerprints) requests
    are refused as ``device_unknown``. Older versions stay in the keystore and keep
    opening what is pending; they are forgotten when the directory records them
    destroyed (``stafett-keys key destroy``), on the next sync of any command.
    """
    store = ctx.home.keystore()
    device = DeviceId.parse(store.owner)
    pair = DeviceKeyPair.generate(device.key(max(store.keypairs) + 1))
    request = make_enrolment_request(pair, int(time.time()), rotation=True)
    request_path = (
        Path(args.request_out)
        if args.request_out
        else ctx.home.path(f"rotation-request-{pair.kid.version}.json")
    )
    store.add_version(pair)
    # Keystore first: a request without the private key behind it would be useless.
    ctx.home.save_keystore()
    write_private(request_path, canonical_json(request.to_json()) + b"\n")
    public = pair.public()
    ctx.out.line(ctx.texts("rotate_done", kid=pair.kid, request=request_path))
    ctx.out.line(
        ctx.texts(
            "init_fingerprints",
            signing=public.verify_key.fingerprint(),
            encryption=public.encryption_key.fingerprint(),
        )
    )
    ctx.out.emit(
        {
            "kid": str(pair.kid),
            "request": str(request_path),
            "signing_fingerprint": public.verify_key.fingerprint(),
            "encryption_fingerprint": public.encryption_key.fingerprint(),
        }
    )


async def cmd_subject_key_import(ctx: Context, args: argparse.Namespace) -> None:
    key = read_subject_key(ctx, Path(args.file))
    store = ctx.home.keystore()
    store.subject_key = key
    ctx.home.save_keystore()
    ctx.out.line(ctx.texts("subject_key_imported"))
    ctx.out.emit({"subject_key": True})


async def cmd_gateway_key_pin(ctx: Context, args: argparse.Namespace) -> None:
    """Trust a gateway key given by the security admin (out of band, by fingerprint):
    the way in when a rotation was not announced by a key this device trusts (a
    device pinned nothing yet, or the admins replaced a compromised gateway key)."""
    key = VerifyKey.from_b64(args.key)  # validated (size, point) before saving
    ctx.home.add_gateway_key(key.b64())
    ctx.out.warn(ctx.texts("gateway_key_pinned", fpr=key.fingerprint()))
    ctx.out.emit({"pinned": key.fingerprint()})


async def cmd_gateway_key_show(ctx: Context, args: argparse.Namespace) -> None:
    keys = [VerifyKey.from_b64(k) for k in ctx.home.gateway_keys_b64()]
    for key in keys:
        ctx.out.line(ctx.texts("gateway_key_line", fpr=key.fingerprint(), b64=key.b64()))
    if not keys:
        ctx.out.line(ctx.texts("none"))
    listed = [{"fingerprint": k.fingerprint(), "verify_key": k.b64()} for k in keys]
    ctx.out.emit({"gateway_keys": listed})


async def cmd_directory(ctx: Context, args: argparse.Namespace) -> None:
    async with ctx.client() as client:
        directory, new = await sync_with_warnings(ctx, client)
    ctx.home.save_keystore_if_changed()
    units = sorted(directory.units.values(), key=lambda u: u.unit)
    rows = []
    devices: list[dict[str, Any]] = []
    for name, record in sorted(directory.devices.items()):
        for version, key in sorted(record.versions.items()):
            status = "revoked" if record.revoked else key.status
            signing, encryption = key.verify_key.fingerprint(), key.encryption_key.fingerprint()
            rows.append([str(record.kid(version)), status, signing, encryption])
            devices.append(
                {
                    "kid": str(record.kid(version)),
                    "device": name,
                    "status": status,
                    "signing_fingerprint": signing,
                    "encryption_fingerprint": encryption,
                }
            )
    t = ctx.texts
    ctx.out.line(t("dir_header", size=directory.size))
    ctx.out.line(t("dir_head", head=directory.head.hex()))
    if new:
        ctx.out.line(t("dir_new", n=new))
    ctx.out.line("")
    ctx.out.line(t("dir_units"))
    ctx.out.line(
        table(
            [t("col_unit"), t("col_kind"), t("col_name")], [[u.unit, u.kind, u.name] for u in units]
        )
    )
    ctx.out.line("")
    ctx.out.line(t("dir_devices"))
    ctx.out.line(
        table([t("col_kid"), t("col_status"), t("col_signing"), t("col_encryption")], rows)
    )
    ctx.out.emit(
        {
            "size": directory.size,
            "head": directory.head.hex(),
            "new_entries": new,
            "units": [{"unit": u.unit, "kind": u.kind, "name": u.name} for u in units],
            "devices": devices,
        }
    )


def dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)

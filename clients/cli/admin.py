"""``stafett admin ...``: the security admin's HTTP side (``keys/`` stays free of HTTP).

- ``push-directory --keys-dir D``: verify the local ``directory.jsonl`` from the trust
  root (``stafett-keys``' workspace), check that the gateway's log is a prefix of it
  (same head at its size — threat: signing new entries on top of a forked history),
  then upload the missing entries, all or nothing per batch.
- ``audit-verify``: fetch the whole audit chain and a signed checkpoint and verify both
  against the gateway key pinned out of band (``--gateway-key``).
- ``audit-export --out F``: write the chain and a signed checkpoint to a file, cut at
  the checkpoint, for ``stafett-keys audit verify`` to check offline (``keys/`` has no
  network; the export can be verified on an admin machine that never talks to the
  gateway, and kept as evidence). Nothing is checked here: the verifier decides.
- ``subject-key-new --out F``: a new city subject key file to hand to devices.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from clients.admin import StafettAdminClient
from clients.cli.common import Context, warn_gateway_keys
from clients.cli.device import write_subject_key
from clients.cli.state import CliFailure, open_keystore, read_passphrase, write_json
from clients.keys_admin.audit import EXPORT_FORMAT
from clients.keys_admin.store import KEYSTORE, Workspace
from clients.sdk.gateway_trust import GatewayTrust
from keys.crypto.keypairs import VerifyKey

_BATCH = 500


def _admin_client(
    ctx: Context, keys_dir: Path, gateway_key: VerifyKey | GatewayTrust | None
) -> StafettAdminClient:
    passphrase = read_passphrase(ctx.texts)
    keystore = open_keystore(keys_dir / KEYSTORE, passphrase, ctx.texts, keys_dir)
    return StafettAdminClient(ctx.home.gateway_url(), keystore, gateway_key=gateway_key)


def _keys_dir(args: argparse.Namespace) -> Path:
    return Path(args.keys_dir or os.environ.get("STAFETT_KEYS_DIR", "."))


async def cmd_push_directory(ctx: Context, args: argparse.Namespace) -> None:
    keys_dir = _keys_dir(args)
    verified = Workspace(keys_dir).verify()
    local = verified.entries
    client = _admin_client(ctx, keys_dir, ctx.gateway_key())
    try:
        remote = (await client.sync_directory()).directory
        if remote.size > len(local):
            raise CliFailure(ctx.texts("push_ahead", remote=remote.size, local=len(local)))
        if remote.size and local[remote.size - 1].hash() != remote.head:
            raise CliFailure(ctx.texts("push_diverged", seq=remote.size - 1))
        missing = local[remote.size :]
        size = remote.size
        for start in range(0, len(missing), _BATCH):
            batch = missing[start : start + _BATCH]
            answer = await client.post_directory_entries([e.to_json() for e in batch])
            size = int(answer.get("size", size + len(batch)))
    finally:
        await client.close()
    if missing:
        ctx.out.line(ctx.texts("pushed", n=len(missing), size=size))
    else:
        ctx.out.line(ctx.texts("push_nothing", size=size))
    ctx.out.emit({"pushed": len(missing), "size": size})


async def cmd_audit_verify(ctx: Context, args: argparse.Namespace) -> None:
    trust = GatewayTrust([VerifyKey.from_b64(args.gateway_key)]) if args.gateway_key else None
    trust = trust or ctx.gateway_key()
    if trust is None:
        raise CliFailure(ctx.texts("no_gateway_key"), status=2)
    client = _admin_client(ctx, _keys_dir(args), trust)
    try:
        # A rotated gateway key is accepted only as announced by a trusted one (the
        # argument is in clients.sdk.gateway_trust); a key given with --gateway-key
        # learns for this run only, the device's pins are saved.
        learned = trust.learn(await client.gateway_key())
        if not args.gateway_key:
            warn_gateway_keys(ctx, learned)
        head = await client.verify_audit(trust.keys)
    finally:
        await client.close()
    ctx.out.line(ctx.texts("audit_ok", size=head.size, head=head.head))
    ctx.out.emit({"ok": True, "size": head.size, "head": head.head})


async def cmd_audit_export(ctx: Context, args: argparse.Namespace) -> None:
    path = _new_file(ctx, Path(args.out))
    client = _admin_client(ctx, _keys_dir(args), ctx.gateway_key())
    try:
        # Checkpoint first, entries second: every entry the checkpoint covers already
        # exists when the entries are read. Entries appended in between are cut off
        # below, so the export ends at a head the gateway signed (an entry after the
        # last checkpoint is vouched for by nobody; the verifier refuses such a tail).
        checkpoint = await client.audit_checkpoint()
        entries = await client.audit_entries()
    finally:
        await client.close()
    size = checkpoint.get("size")
    if type(size) is int and 0 <= size < len(entries):
        entries = entries[:size]
    write_json(
        path,
        {
            "format": EXPORT_FORMAT,
            "v": 1,
            "exported_at": int(time.time()),
            "entries": entries,
            "checkpoints": [checkpoint],
        },
    )
    ctx.out.line(ctx.texts("audit_exported", path=path, n=len(entries), size=size))
    ctx.out.emit({"path": str(path), "entries": len(entries), "checkpoint": checkpoint})


async def cmd_subject_key_new(ctx: Context, args: argparse.Namespace) -> None:
    path = Path(args.out)
    _write_new_subject_key(ctx, path)
    ctx.out.line(ctx.texts("subject_key_created", path=path))
    ctx.out.emit({"path": str(path)})


def _new_file(ctx: Context, path: Path) -> Path:
    if path.exists():
        raise CliFailure(ctx.texts("target_exists", path=path))
    return path


def _write_new_subject_key(ctx: Context, path: Path) -> None:
    write_subject_key(_new_file(ctx, path))

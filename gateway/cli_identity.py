"""``stafett-gateway identity …`` and ``init --from``: one gateway key for many instances.

    stafett-gateway init [--pin-admin KID=B64 ...]                 first instance: new key
    stafett-gateway identity export --out F [--passphrase-env VAR] copy it for another one
    stafett-gateway init --from F [--passphrase-env VAR]           further instances
    stafett-gateway identity show                                  the key set, to pin
    stafett-gateway identity rotate                                next key version

Passphrases come from the environment only (``STAFETT_GATEWAY_KEY_PASSPHRASE`` for the
instance's own keystore, ``--passphrase-env VAR`` names the variable of the export
file's, default the same): never from the command line, where ``ps`` shows them to
every local user. Output names kids, public keys and fingerprints; never a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from gateway.db import audit_trail
from gateway.db.engine import make_sessionmaker, open_engine
from gateway.identity import (
    GatewayIdentity,
    IdentityError,
    export_identity,
    import_identity,
    load_identity,
    rotate_identity,
    save_store,
)
from gateway.settings import Settings
from keys.crypto.keypairs import VerifyKey

ENV_VAR_HELP = (
    "name of the environment variable holding the export file's passphrase "
    "(default: the gateway key's own, STAFETT_GATEWAY_KEY_PASSPHRASE)"
)


def add_identity_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    identity = sub.add_parser(
        "identity",
        help="the gateway key: export it to further instances, show or rotate it",
        description=(
            "Every instance of one gateway signs with the same gateway key. Run "
            "`stafett-gateway init` once, then `identity export --out F` there and "
            "`init --from F` on each further instance (or point gateway_key_file of every "
            "instance at one shared keystore)."
        ),
    )
    actions = identity.add_subparsers(dest="identity_command", required=True)
    export = actions.add_parser(
        "export",
        help="write the gateway keystore to a new passphrase-sealed file (mode 0600)",
        description=(
            "Write the gateway key (every version) and the pinned admin keys to F, in "
            "the keystore format sealed under a passphrase, for `stafett-gateway init "
            "--from F` on another instance. F must not exist. Move F over a channel "
            "you trust and delete it after the import."
        ),
    )
    export.add_argument("--out", type=Path, required=True, metavar="F", help="new file")
    export.add_argument("--passphrase-env", metavar="VAR", help=ENV_VAR_HELP)
    actions.add_parser(
        "show",
        help="print the key set (kid, public key, fingerprint per version) to pin",
        description=(
            "Print every key version's public key and fingerprint, the current one "
            "marked. Admins pin each of them: `stafett-keys audit verify --gateway-key "
            "B64 --gateway-key B64 ...`."
        ),
    )
    actions.add_parser(
        "rotate",
        help="generate the next gateway key version and announce it in the audit trail",
        description=(
            "Add gateway/<name>/<n+1> to this instance's keystore and make it the signing "
            "key. Before saving, an audit entry gateway_key_rotated (new kid, previous "
            "kid, fingerprint) is appended and a checkpoint over it is signed with the "
            "previous key. Stop the other instances or give them the new keystore at "
            "once (`identity export` + `init --from`); until then they sign with the "
            "previous key, which stays valid. Pin the new public key with the admins."
        ),
    )


def add_init_from(init: argparse.ArgumentParser) -> None:
    init.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="F",
        help="take the gateway key from F (made by `identity export`) instead of a new one",
    )
    init.add_argument("--passphrase-env", metavar="VAR", help=ENV_VAR_HELP)


def _env_passphrase(name: str | None) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise IdentityError(f"the environment variable {name} is not set")
    return value


def print_identity(identity: GatewayIdentity) -> None:
    print(f"gateway key {identity.kid} fingerprint {identity.verify_key.fingerprint()}")
    print(f"verify key (pin this in clients): {identity.verify_key.b64()}")
    print(f"pinned admins: {', '.join(sorted(identity.pinned_admins)) or 'none'}")


def init_from(settings: Settings, args: argparse.Namespace, pins: dict[str, VerifyKey]) -> int:
    identity = import_identity(settings, args.from_file, pins, _env_passphrase(args.passphrase_env))
    print_identity(identity)
    return 0


def identity_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.identity_command == "export":
        identity = export_identity(settings, args.out, _env_passphrase(args.passphrase_env))
        print(
            f"exported gateway key {identity.kid} "
            f"({len(identity.key_set)} version(s)) to {args.out}"
        )
        print(f"on the next instance: stafett-gateway init --from {args.out}")
        return 0
    if args.identity_command == "show":
        identity = load_identity(settings)
        for kid, key in sorted(identity.key_set.items(), key=lambda kv: kv[0]):
            mark = " (current)" if kid == str(identity.kid) else ""
            print(f"{kid}{mark} {key.b64()} fingerprint {key.fingerprint()}")
        return 0
    if args.identity_command == "rotate":
        before, after = asyncio.run(_rotate(settings))
        print(f"rotated {before.kid} -> {after.kid} fingerprint {after.verify_key.fingerprint()}")
        print(f"new verify key (pin it beside the old one): {after.verify_key.b64()}")
        return 0
    return 2


async def _rotate(settings: Settings) -> tuple[GatewayIdentity, GatewayIdentity]:
    before, after, store = rotate_identity(settings)
    now = int(time.time())
    engine = open_engine(settings.db_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            # The announcement goes into the chain first and is covered by a checkpoint
            # the *previous* key signs: whoever trusts the old key sees, signed by it,
            # when and to which fingerprint the gateway handed over (the pins remain
            # what makes a key trusted; see keys_admin.audit).
            await audit_trail.record(
                session,
                "gateway_key_rotated",
                now=now,
                kid=str(after.kid),
                previous=str(before.kid),
                fingerprint=after.verify_key.fingerprint(),
            )
            await audit_trail.sign_checkpoint(session, before.kid, before.signing_key, now=now)
    finally:
        await engine.dispose()
    # Only after the announcement committed: a failed announcement leaves the old key.
    save_store(settings, store)
    return before, after

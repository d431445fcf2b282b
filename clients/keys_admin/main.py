"""``stafett-keys``: the security admins' tool for the trust root and the key directory.

    stafett-keys init --admin NAME [--dir D]
    stafett-keys unit create UNIT --kind KIND --name "Display name"
    stafett-keys device enrol REQUEST.json [--role officer|integration] [--contact]
    stafett-keys device rotate REQUEST.json [--min-version N]
    stafett-keys device revoke DEVICE --reason REASON
    stafett-keys device min-version DEVICE N
    stafett-keys key destroy DEVICE VERSION
    stafett-keys admin keygen --admin NAME [--version N]
    stafett-keys admin add KID VERIFY_KEY_B64 | admin remove KID
    stafett-keys show [--json] | verify [--json] | checkpoint
    stafett-keys audit verify --file EXPORT.json --gateway-key B64 [--known-checkpoints F]

The passphrase comes from ``STAFETT_PASSPHRASE`` or a prompt, never from the command
line (argv is visible to every user on the machine). Errors are one line on stderr
with the stable error code and a non-zero exit: 1 for a refusal, 2 for bad usage.
The log file ``directory.jsonl`` is the unit of exchange with the gateway (an upload
command will be added by the gateway team on top of ``clients.keys_admin.store.read_log``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from clients.keys_admin import audit as cli_audit
from clients.keys_admin import commands
from clients.keys_admin.store import CliError, Workspace
from keys.errors import KeysError
from keys.protocol.directory_entry import DEVICE_ROLES, REVOKE_REASONS, UNIT_KINDS

PROG = "stafett-keys"
Command = Callable[[Workspace, argparse.Namespace, commands.Out], None]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the whole usage block; one line is easier to read in a script.
        self.exit(2, f"{PROG}: usage error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("STAFETT_KEYS_DIR", ".")),
        help="admin working directory (default: $STAFETT_KEYS_DIR or .)",
    )
    parser = _Parser(prog=PROG, description="Stafett trust root and key directory.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(
        parent: argparse._SubParsersAction[_Parser], name: str, func: Command, help_: str
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add(sub, "init", commands.cmd_init, "create the trust root: admin key, log, checkpoint")
    p.add_argument("--admin", required=True, help="the root admin's name (kid admin/NAME/1)")

    unit = sub.add_parser("unit", help="units").add_subparsers(dest="action", required=True)
    p = add(unit, "create", commands.cmd_unit_create, "create a unit")
    p.add_argument("unit")
    p.add_argument("--kind", required=True, choices=sorted(UNIT_KINDS))
    p.add_argument("--name", required=True, help="display name")

    device = sub.add_parser("device", help="devices").add_subparsers(dest="action", required=True)
    p = add(device, "enrol", commands.cmd_device_enrol, "enrol a device from its request file")
    p.add_argument("request", help="the device's enrolment request (JSON)")
    p.add_argument("--role", choices=sorted(DEVICE_ROLES), default="officer")
    p.add_argument("--contact", action="store_true", help="the unit's contact device")
    p = add(device, "rotate", commands.cmd_device_rotate, "publish a device's next key version")
    p.add_argument("request", help="the device's rotation request (JSON)")
    p.add_argument("--min-version", type=int, help="minimum encryption version (default: keep)")
    p = add(device, "revoke", commands.cmd_device_revoke, "revoke a device at once (lost laptop)")
    p.add_argument("device", help="unit/name")
    p.add_argument("--reason", required=True, choices=sorted(REVOKE_REASONS))
    p = add(
        device,
        "min-version",
        commands.cmd_device_min_version,
        "raise a device's minimum encryption version (before destroying older keys)",
    )
    p.add_argument("device", help="unit/name")
    p.add_argument("min_version", type=int, metavar="N")

    key = sub.add_parser("key", help="key versions").add_subparsers(dest="action", required=True)
    p = add(key, "destroy", commands.cmd_key_destroy, "record that a retired key was destroyed")
    p.add_argument("device", help="unit/name")
    p.add_argument("version", type=int)

    admin = sub.add_parser("admin", help="security admins").add_subparsers(
        dest="action", required=True
    )
    p = add(admin, "keygen", commands.cmd_admin_keygen, "create a new admin's keystore")
    p.add_argument("--admin", required=True, help="name (kid admin/NAME/VERSION)")
    p.add_argument("--version", type=int, default=1)
    p = add(admin, "add", commands.cmd_admin_add, "add a security admin")
    p.add_argument("kid", help="admin/NAME/VERSION")
    p.add_argument("verify_key", help="the admin's Ed25519 public key (base64)")
    p = add(admin, "remove", commands.cmd_admin_remove, "remove a security admin")
    p.add_argument("kid")

    for name, func, help_ in (
        ("show", commands.cmd_show, "show the verified directory with fingerprints"),
        ("verify", commands.cmd_verify, "verify the log and checkpoint from the trust root"),
    ):
        add(sub, name, func, help_).add_argument("--json", action="store_true")
    add(sub, "checkpoint", commands.cmd_checkpoint, "sign a checkpoint of the current log")

    audit = sub.add_parser("audit", help="the gateway's audit trail").add_subparsers(
        dest="action", required=True
    )
    p = add(audit, "verify", cli_audit.cmd_audit_verify, cli_audit.VERIFY_HELP)
    cli_audit.add_audit_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (0 ok, 1 refused, 2 usage)."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help or a usage error: argparse already printed
        return exc.code if isinstance(exc.code, int) else 2

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        args.func(Workspace(args.dir), args, out)
    except KeysError as exc:
        # Messages of KeysError never hold key material or content (keys.errors).
        return _fail(f"{exc.code}: {exc}")
    except CliError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.strerror or 'I/O error'}: {exc.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except Exception as exc:  # never a traceback: it could carry values from locals
        return _fail(f"internal error ({type(exc).__name__}); please report it")
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""``stafett``: an officer's (or an integration's) client for the Stafett gateway.

    stafett [--home D] [--gateway URL] [--lang sv|en] [--json] COMMAND ...

    init --device UNIT/NAME --gateway URL --trust-root F [--subject-key-file F]
         [--gateway-key B64] [--request-out F] [--key-version N]
    subject-key import FILE
    device rotate [--request-out F]
    directory
    consent record --pair FROM:TO ... --category C ... --purpose P ...
                   (--until YYYY-MM-DD | --days N) --form written --evidence F
                   | --form oral --witness W --note N   [--minor --guardian-evidence F]
    consent list | consent withdraw CONSENT_ID [--reason R] [--yes]
    send --to UNIT [--officer NAME ...] --category C --purpose P
         [--text-file F] [--file F ...] [--consent ID] [--reply-to ID] [--days N]
    inbox | open ID [--out DIR] [--reopen] | ack ID [--reject REASON] | status [ID] | recall ID
    watch [--after SEQ] [--kind K ...] [--count N] [--timeout S]
    ui [--idle-minutes N] [--no-browser]   (the web inbox on 127.0.0.1)
    bridge --root D [--once] [--interval S] [--no-send] [--no-receive]
    admin push-directory --keys-dir D | admin audit-verify --keys-dir D
    admin audit-export --keys-dir D --out F | admin subject-key-new --out F

Secrets never come from the command line: the keystore passphrase from
``STAFETT_PASSPHRASE`` or a prompt, the personnummer from a prompt that does not echo
or one line of stdin (``--pnr-stdin``). Exit status: 0 done, 1 refused or failed,
2 bad usage, 3 the gateway could not be reached. Errors are one translated line on
stderr, never a traceback (a traceback can carry values from local variables).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from clients.bridge import service as bridge_service
from clients.cli import admin as cli_admin
from clients.cli import consent as cli_consent
from clients.cli import device as cli_device
from clients.cli import receive as cli_receive
from clients.cli import send as cli_send
from clients.cli import status as cli_status
from clients.cli.bundle import BundleInvalid
from clients.cli.common import Context
from clients.cli.render import Output, when
from clients.cli.state import CliFailure, Home, default_home
from clients.cli.texts import Texts, choose_language
from clients.errors import ClientError, EnvelopeExpired, EnvelopeReplayed, GatewayUnavailable
from clients.keys_admin.store import CliError
from clients.sdk.open_checks import SenderDirectoryForked
from clients.ui.launch import add_arguments as add_ui_arguments
from clients.ui.launch import cmd_ui
from keys.errors import DirectoryForked, KeysError, StafettError
from keys.protocol.problems import GatewayError, code_of
from keys.protocol.refusals import ConsentRefused, PolicyError
from keys.protocol.titles import title as problem_title

PROG = "stafett"
EXIT_UNAVAILABLE = 3
Command = Callable[[Context, argparse.Namespace], Awaitable[None]]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliFailure(message, status=2)


def _message_id(value: str) -> str:
    """Message ids are lower-case UUIDs; they also name files and folders here (threat:
    ``../`` in an id steering ``open`` or the local records outside their folders)."""
    try:
        if str(uuid.UUID(value)) == value:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"not a message id: {value[:40]!r}")


def _consent_id(value: str) -> str:
    """A consent id is a lower-case UUID. Anything else is refused without echoing it:
    the likeliest mistake is a personnummer typed here, which must not be repeated on
    screen nor sent to the gateway in a URL (threat: the number in logs and history)."""
    try:
        if str(uuid.UUID(value)) == value:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        "--consent takes a consent id (a UUID); a personnummer is never an argument "
        "(clear the shell history if one was typed here)"
    )


def _common() -> _Parser:
    # Accepted before or after the command; SUPPRESS keeps a later default from
    # overwriting what was given before the command.
    common = _Parser(add_help=False)
    s = argparse.SUPPRESS
    common.add_argument("--home", type=Path, default=s, help="state directory ($STAFETT_HOME)")
    common.add_argument("--gateway", default=s, help="gateway URL (saved at init)")
    common.add_argument("--lang", default=s, choices=["sv", "en"], help="language ($STAFETT_LANG)")
    common.add_argument("--json", action="store_true", default=s, help="JSON output for scripts")
    common.add_argument(
        "--pnr-stdin", action="store_true", default=s, help="read the personnummer from stdin"
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(prog=PROG, description="Stafett client", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(
        parent: argparse._SubParsersAction[_Parser], name: str, func: Command, help_: str
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add(sub, "init", cli_device.cmd_init, "create this device's keys and enrolment request")
    p.add_argument("--device", required=True, help="unit/name, e.g. so-nordost/anna")
    p.add_argument("--trust-root", required=True, help="trust-root.json from the security admin")
    p.add_argument("--subject-key-file", help="the city subject key file from the admin")
    p.add_argument("--gateway-key", help="the gateway's verify key (base64), to pin")
    p.add_argument("--request-out", help="where to write the enrolment request")
    p.add_argument(
        "--key-version",
        type=int,
        default=1,
        help="key version to start at: 1, or after a revocation the next one the admin names",
    )

    dev = sub.add_parser("device", help="this device's keys").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    p = add(dev, "rotate", cli_device.cmd_rotate, "new key pairs and a rotation request")
    p.add_argument("--request-out", help="where to write the rotation request")

    sk = sub.add_parser("subject-key", help="the city subject key")
    p = add(
        sk.add_subparsers(dest="action", required=True, parser_class=_Parser),
        "import",
        cli_device.cmd_subject_key_import,
        "install the city subject key from a file",
    )
    p.add_argument("file")

    add(sub, "directory", cli_device.cmd_directory, "sync and verify the key directory")

    gk = sub.add_parser("gateway-key", help="the gateway keys this device trusts")
    gk_actions = gk.add_subparsers(dest="action", required=True, parser_class=_Parser)
    add(gk_actions, "show", cli_device.cmd_gateway_key_show, "list the trusted gateway keys")
    p = add(
        gk_actions,
        "pin",
        cli_device.cmd_gateway_key_pin,
        "trust a gateway key the security admin gave you (compare its fingerprint)",
    )
    p.add_argument("key", help="the gateway's verify key (base64)")

    consent = sub.add_parser("consent", help="consents").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    p = add(consent, "record", cli_consent.cmd_record, "record a consent (asks for personnummer)")
    p.add_argument("--pair", action="append", required=True, help="FROM:TO, repeatable")
    p.add_argument("--category", action="append", required=True)
    p.add_argument("--purpose", action="append", required=True)
    p.add_argument("--until", help="last valid day YYYY-MM-DD")
    p.add_argument("--days", type=int, help="valid for N days")
    p.add_argument("--form", choices=["written", "oral"], required=True)
    p.add_argument("--evidence", help="the signed form (only its checksum is sent)")
    p.add_argument("--witness")
    p.add_argument("--note")
    p.add_argument("--minor", action="store_true")
    p.add_argument("--guardian-evidence", action="append")
    add(consent, "list", cli_consent.cmd_list, "list a person's consents (asks for personnummer)")
    p = add(consent, "withdraw", cli_consent.cmd_withdraw, "register a withdrawal")
    p.add_argument("consent_id")
    p.add_argument("--reason", help="withdrawal reason code (asked at a terminal if left out)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (scripts)")

    p = add(sub, "send", cli_send.cmd_send, "send a text and/or files")
    p.add_argument("--to", required=True, help="recipient unit")
    p.add_argument("--officer", action="append", help="named officer of that unit, repeatable")
    p.add_argument("--category", required=True)
    p.add_argument("--purpose", required=True)
    p.add_argument("--text-file", help="the message text (UTF-8 file)")
    p.add_argument("--file", action="append", help="an attachment, repeatable")
    p.add_argument(
        "--consent",
        type=_consent_id,
        help="consent id (the personnummer is still asked for and must match it)",
    )
    p.add_argument("--reply-to", type=_message_id, help="message id this answers")
    p.add_argument("--days", type=int, default=14, help="keep for N days if not collected")

    add(sub, "inbox", cli_receive.cmd_inbox, "messages waiting for this device")
    p = add(sub, "open", cli_receive.cmd_open, "verify and decrypt a message into a folder")
    p.add_argument("message_id", type=_message_id)
    p.add_argument("--out", default=".", help="folder to create the message's folder in")
    p.add_argument(
        "--reopen",
        action="store_true",
        help="open a message this computer already opened, again (it must be the same "
        "envelope; a warning says it is not a new message)",
    )
    p = add(sub, "ack", cli_receive.cmd_ack, "sign the handover receipt")
    p.add_argument("message_id", type=_message_id)
    p.add_argument(
        "--reject",
        metavar="REASON",
        help="sign a rejection instead, with a reason code from the vocabulary "
        "(rejection_reasons, e.g. wrong_district); the sender sees the reason",
    )
    p = add(
        sub,
        "status",
        cli_status.cmd_status,
        "own sent messages: state, due time, escalation, verified receipts and rejection reasons",
    )
    p.add_argument("message_id", nargs="?", type=_message_id)
    p = add(sub, "recall", cli_status.cmd_recall, "take a sent message back before handover")
    p.add_argument("message_id", type=_message_id)
    p = add(sub, "watch", cli_receive.cmd_watch, "live notifications")
    p.add_argument("--after", type=int)
    p.add_argument("--kind", action="append")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--timeout", type=float, default=0)

    p = add(sub, "ui", cmd_ui, "the web inbox in a browser on this computer (127.0.0.1)")
    add_ui_arguments(p)

    admin = sub.add_parser("admin", help="security admin").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    p = add(sub, "bridge", bridge_service.cmd_bridge, "run the case-system folder bridge")
    bridge_service.add_arguments(p)

    p = add(admin, "push-directory", cli_admin.cmd_push_directory, "upload directory entries")
    p.add_argument("--keys-dir", help="stafett-keys working directory ($STAFETT_KEYS_DIR)")
    p = add(admin, "audit-verify", cli_admin.cmd_audit_verify, "verify the audit trail")
    p.add_argument("--keys-dir")
    p.add_argument("--gateway-key", help="the gateway's verify key (base64)")
    p = add(
        admin,
        "audit-export",
        cli_admin.cmd_audit_export,
        "export the audit trail and a signed checkpoint for `stafett-keys audit verify`",
    )
    p.add_argument("--keys-dir")
    p.add_argument("--out", required=True, help="the export file to create (JSON)")
    p = add(admin, "subject-key-new", cli_admin.cmd_subject_key_new, "create a city subject key")
    p.add_argument("--out", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (0, 1 refused, 2 usage, 3 unreachable)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    texts = Texts(choose_language(_peek_lang(args_list)))
    try:
        args = _parser().parse_args(args_list)
    except CliFailure as exc:
        print(texts("usage_error", message=str(exc)), file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    home = Home(
        getattr(args, "home", None) or default_home(), texts, getattr(args, "gateway", None)
    )
    out = Output(texts, json_mode=bool(getattr(args, "json", False)))
    ctx = Context(home, texts, out, pnr_stdin=bool(getattr(args, "pnr_stdin", False)))
    try:
        asyncio.run(args.func(ctx, args))
    except BaseException as exc:  # every failure becomes one line, never a traceback
        message, status = describe(texts, exc, home)
        print(texts("error", message=message), file=sys.stderr)
        return status
    return 0


def _peek_lang(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _detail(texts: Texts, exc: StafettError) -> str:
    # A Swedish sentence gets the Swedish title from the one table (keys.protocol.titles),
    # not the gateway's English detail; in English the detail says more than the title.
    return problem_title(exc.code, "sv") if texts.language == "sv" else str(exc)


def describe(texts: Texts, exc: BaseException, home: Home) -> tuple[str, int]:
    """The user-facing line and exit status for a failure.

    Exception texts from keys/, gateway/ and the SDK never hold content, personnummer,
    subject references or keys (their modules promise it), so their detail may be shown.
    """
    if isinstance(exc, CliFailure):
        return str(exc), exc.status
    if isinstance(exc, KeyboardInterrupt):
        return texts("interrupted"), 130
    if isinstance(exc, GatewayUnavailable):
        try:
            url = home.gateway_url()
        except CliFailure:
            url = "?"
        return texts("gateway_down", url=url), EXIT_UNAVAILABLE
    if isinstance(exc, SenderDirectoryForked):
        return texts("dir_forked_sender", code=exc.code), 1
    if isinstance(exc, DirectoryForked):
        return texts("dir_forked", code=exc.code), 1
    if isinstance(exc, EnvelopeExpired):
        return texts("envelope_expired", expires=when(exc.expires), code=exc.code), 1
    if isinstance(exc, EnvelopeReplayed):
        return texts("envelope_replayed", code=exc.code), 1
    if isinstance(exc, GatewayError) and code_of(exc) == "device_revoked":
        # Not "try again later": a revoked key never works again (issue 8).
        return texts("device_revoked", code=code_of(exc)), 1
    if isinstance(exc, ConsentRefused):
        detail = f"{_detail(texts, exc)} {texts('consent_refused_hint')}"
        return texts("gateway_refused", code=exc.code, detail=detail), 1
    if isinstance(exc, GatewayError | PolicyError):
        return texts("gateway_refused", code=code_of(exc), detail=_detail(texts, exc)), 1
    if isinstance(exc, KeysError):
        return texts("crypto_refused", code=exc.code, detail=_detail(texts, exc)), 1
    if isinstance(exc, BundleInvalid):
        return texts("crypto_refused", code=exc.code, detail=str(exc)), 1
    if isinstance(exc, ClientError):
        return texts("gateway_odd", detail=f"{exc} ({exc.code})"), 1
    if isinstance(exc, CliError):
        return str(exc), 1
    if isinstance(exc, OSError):
        return texts("file_missing", path=exc.filename or exc.strerror or "?"), 1
    return texts("internal_error", kind=type(exc).__name__), 1


if __name__ == "__main__":
    sys.exit(main())

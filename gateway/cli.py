"""``stafett-gateway``: serve, migrate, init, identity, report."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from gateway.app import create_app
from gateway.cli_identity import (
    add_identity_commands,
    add_init_from,
    identity_command,
    init_from,
    print_identity,
)
from gateway.db.engine import make_sessionmaker, open_engine
from gateway.identity import IdentityError, init_identity
from gateway.migrations import migrate
from gateway.observability.logs import setup_logging
from gateway.report import render_png
from gateway.services.deadlines import deadline_policy
from gateway.services.followup import FORMATS, Report, follow_up_report, period_of
from gateway.settings import Settings, SettingsError
from gateway.transport import GuardedSite, server_kwargs
from keys.crypto.keypairs import KeyId, VerifyKey
from keys.domain.deadlines import DeadlinePolicyError
from keys.errors import KeysError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stafett-gateway", description=__doc__)
    parser.add_argument(
        "--config", type=Path, default=os.environ.get("STAFETT_CONFIG"), help="TOML settings file"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway (loopback by default)")
    serve.add_argument("--migrate", action="store_true", help="migrate before serving")
    sub.add_parser("migrate", help="bring the database schema up to date (idempotent)")
    init = sub.add_parser("init", help="create the gateway key and pin root admin keys")
    init.add_argument(
        "--pin-admin",
        action="append",
        default=[],
        metavar="KID=BASE64",
        help="a root security admin's Ed25519 key (admin/name/1=...); repeatable",
    )
    add_init_from(init)
    add_identity_commands(sub)
    report = sub.add_parser(
        "report", help="de-identified follow-up figures per month (CSV or JSON, PNG chart)"
    )
    period = report.add_mutually_exclusive_group(required=True)
    period.add_argument("--month", metavar="YYYY-MM", help="one month (Europe/Stockholm)")
    period.add_argument("--year", metavar="YYYY", help="a whole year")
    report.add_argument("--format", choices=sorted(FORMATS), default="csv")
    report.add_argument("--out", type=Path, help="write the figures here instead of stdout")
    report.add_argument("--png", type=Path, metavar="PATH", help="also draw the chart here")
    return parser


async def _report(settings: Settings, args: argparse.Namespace) -> Report:
    engine = open_engine(settings.db_url)
    try:
        return await follow_up_report(
            make_sessionmaker(engine),
            period_of(args.month, args.year),
            fmt=args.format,
            who="cli",
            now=int(time.time()),
        )
    finally:
        await engine.dispose()


def report_command(settings: Settings, args: argparse.Namespace) -> int:
    try:
        period_of(args.month, args.year)  # before touching the database
    except ValueError as exc:
        print(f"stafett-gateway: {exc}", file=sys.stderr)
        return 2
    result = asyncio.run(_report(settings, args))
    if args.out is not None:
        args.out.write_text(result.text, encoding="utf-8")
    else:
        sys.stdout.write(result.text)
    if args.png is not None:
        render_png(result.rows, args.png, year=result.period.year)
    return 0


def _pins(values: Sequence[str]) -> dict[str, VerifyKey]:
    pins: dict[str, VerifyKey] = {}
    for value in values:
        kid, sep, key = value.partition("=")
        if not sep or KeyId.parse(kid).unit != "admin":
            raise SettingsError("--pin-admin wants admin/name/version=BASE64")
        pins[kid] = VerifyKey.from_b64(key)
    return pins


async def serve(app: web.Application, settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly (cleanup_ctx disposes the engine)."""
    # Time limits, a connection cap and problem+json for parser errors: gateway.transport.
    runner = web.AppRunner(app, **server_kwargs(settings))
    await runner.setup()
    try:
        await GuardedSite(runner, settings).start()
        logging.getLogger("gateway").info("listening on %s:%d", settings.host, settings.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings.load(args.config, os.environ)
        if args.command == "migrate":
            revision = asyncio.run(migrate(settings.db_url))
            print(f"database at revision {revision}")
            return 0
        if args.command == "init":
            if args.from_file is not None:
                return init_from(settings, args, _pins(args.pin_admin))
            print_identity(init_identity(settings, _pins(args.pin_admin)))
            return 0
        if args.command == "identity":
            return identity_command(settings, args)
        if args.command == "report":
            return report_command(settings, args)
        if args.command == "serve":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            deadline_policy(settings)  # a broken policy file stops start-up, not a send
            # Only a server that starts takes over the root logger (format, level,
            # filters); one-shot commands and refused starts keep basicConfig.
            setup_logging(settings.log_format, settings.log_level)
            if args.migrate:
                asyncio.run(migrate(settings.db_url))
            asyncio.run(serve(create_app(settings), settings))
            return 0
    except (SettingsError, IdentityError, KeysError, DeadlinePolicyError) as exc:
        print(f"stafett-gateway: {exc}", file=sys.stderr)
        return 2
    return 2

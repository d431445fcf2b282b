"""``stafett ui``: serve the web inbox on 127.0.0.1 at a free port and open the browser.

Threat: another machine on the network reaching the app; it binds to loopback only.
The one-time login URL is printed to the terminal (readable only by the officer) and
handed to the default browser; it is never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import webbrowser
from typing import TYPE_CHECKING

from aiohttp import web

from clients.ui.app import create_app
from clients.ui.guard import Guard
from clients.ui.settings import DEFAULT_IDLE_S, UiSettings

if TYPE_CHECKING:
    from clients.cli.common import Context

HOST = "127.0.0.1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--idle-minutes",
        type=float,
        default=DEFAULT_IDLE_S / 60,
        help="lock the keystore after this many minutes without use (default 15)",
    )
    parser.add_argument("--no-browser", action="store_true", help="only print the login link")


async def start(settings: UiSettings) -> tuple[web.AppRunner, Guard, str]:
    """Start the app on a free loopback port; returns the runner, guard and login URL."""
    guard = Guard(language=settings.language)
    runner = web.AppRunner(create_app(settings, guard), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    guard.port = int(runner.addresses[0][1])
    return runner, guard, f"http://{HOST}:{guard.port}{guard.login_path()}"


async def cmd_ui(ctx: Context, args: argparse.Namespace) -> None:
    home = ctx.home
    if not home.exists:
        from clients.cli.state import CliFailure

        raise CliFailure(ctx.texts("no_home", home=home.root))
    settings = UiSettings(
        home=home.root,
        gateway_url=home.gateway_url(),
        gateway_key_b64=home.gateway_key_b64(),
        gateway_keys_b64=tuple(home.gateway_keys_b64()),
        idle_s=max(0.5, float(args.idle_minutes)) * 60,
        language=ctx.texts.language,
    )
    runner, _guard, url = await start(settings)
    try:
        print(ctx.texts("ui_started", url=url), file=sys.stdout, flush=True)
        if not args.no_browser:
            with contextlib.suppress(Exception):
                webbrowser.open(url)
        await asyncio.Event().wait()  # until Ctrl+C
    finally:
        await runner.cleanup()

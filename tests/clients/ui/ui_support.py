"""Start ``stafett ui`` apps for the CLI test devices and talk to them over plain HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from clients.ui.guard import Guard
from clients.ui.launch import start
from clients.ui.settings import UiSettings
from tests.support.cli import Cli

PASSPHRASE = "cli test passphrase"  # tests.support.fixtures.cli_env sets it for the CLI


@dataclass
class RunningUi:
    guard: Guard
    login_url: str
    home: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.guard.port}"

    def url(self, path: str) -> str:
        return self.origin + path


@asynccontextmanager
async def running_ui(cli: Cli, who: str, *, idle_s: float = 900) -> AsyncIterator[RunningUi]:
    home = cli.home(who)
    settings = UiSettings(
        home=home,
        gateway_url=str(cli.gw.url),
        idle_s=idle_s,
        idle_check_s=0.2,
    )
    runner, guard, url = await start(settings)
    try:
        yield RunningUi(guard, url, home)
    finally:
        await runner.cleanup()


def http_session() -> aiohttp.ClientSession:
    # unsafe=True: aiohttp's jar otherwise ignores cookies set by an IP-address host.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(session: aiohttp.ClientSession, ui: RunningUi, *, unlock: bool = True) -> None:
    async with session.get(ui.login_url, allow_redirects=False) as resp:
        assert resp.status == 303, resp.status
    if unlock:
        async with session.post(
            ui.url("/unlock"),
            data={"csrf": ui.guard.csrf, "passphrase": PASSPHRASE, "next": "/inbox"},
            headers={"Origin": ui.origin},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303, await resp.text()

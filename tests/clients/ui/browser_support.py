"""Debian's Chromium driven by Playwright (never a downloaded browser), and axe-core.

Browser tests skip only when /usr/bin/chromium is absent on this machine; `.ci/run`
installs it, so in CI they run. Screenshots of the main pages are written when
``STAFETT_UI_SCREENSHOTS`` names a folder (``docs/ui`` for the README).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from ui_support import PASSPHRASE, RunningUi

CHROMIUM = os.environ.get("STAFETT_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

EXECUTABLE = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# CI sets STAFETT_REQUIRE_BROWSER=1: there a missing Chromium fails the run instead of
# quietly skipping the only tests that use the web inbox as an officer would.
if EXECUTABLE is None and os.environ.get("STAFETT_REQUIRE_BROWSER") == "1":
    raise RuntimeError("STAFETT_REQUIRE_BROWSER=1 but Debian's chromium is not installed")
needs_chromium = pytest.mark.skipif(
    EXECUTABLE is None,
    reason="Debian's chromium is not installed here (.ci/run installs it)",
)


@asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=EXECUTABLE, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def officer_page(b: Browser, ui: RunningUi) -> tuple[BrowserContext, Page]:
    """A fresh browser profile that opened the one-time link and unlocked the keystore."""
    context = await b.new_context(accept_downloads=True, locale="sv-SE")
    page = await context.new_page()
    await page.goto(ui.login_url)
    assert page.url.endswith("/unlock")
    await check_accessible(page)
    await page.get_by_label("Lösenfras").fill(PASSPHRASE)
    await page.get_by_role("button", name="Lås upp").click()
    await page.wait_for_url("**/inbox")
    return context, page


_AXE = Axe()


async def check_accessible(page: Page) -> None:
    """axe-core on the page as it is: no serious or critical violation (WCAG 2.1 AA)."""
    results = await _AXE.run(
        page,
        options={
            "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
        },
    )
    bad: list[Any] = [
        v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")
    ]
    assert not bad, [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in bad]


async def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("STAFETT_UI_SCREENSHOTS")
    if folder:
        await asyncio.to_thread(os.makedirs, folder, exist_ok=True)
        await page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

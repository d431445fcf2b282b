"""``stafett ui`` as an officer starts it: a process that prints a one-time login link
on 127.0.0.1 and serves the unlock page to the browser that opens it."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import pytest
from ui_support import http_session

from tests.support.cli import Cli


@pytest.mark.asyncio
async def test_stafett_ui_prints_a_loopback_login_link(cli: Cli) -> None:
    env = {**os.environ, "STAFETT_HOME": str(cli.home("nora"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clients.cli.main", "ui", "--no-browser",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        text = ""
        while "/login/" not in text:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, (await proc.stderr.read()).decode() if proc.stderr else ""
            text += line.decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/login/\S+", text)
        assert match, text
        async with http_session() as s:
            async with s.get(match.group(0), allow_redirects=False) as resp:
                assert resp.status == 303
                assert resp.headers["Location"] == "/unlock"
            async with s.get(f"http://127.0.0.1:{match.group(1)}/unlock") as resp:
                assert resp.status == 200
                assert "Lås upp Stafett" in await resp.text()
    finally:
        proc.terminate()
        await proc.wait()

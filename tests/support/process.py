"""A real ``stafett-gateway serve`` child process that a test can SIGKILL and restart on
the same data directory, and an SDK client for it that retries through the restart.
Used by the crash, chaos and backup/restore tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

from clients.sdk import StafettClient
from tests.support.gateway import PASSPHRASE, RunningGateway
from tests.support.sdk import device_keystore

_RUN_CLI = "import sys; from gateway.cli import main; sys.exit(main(sys.argv[1:]))"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    """``stafett-gateway serve`` in a child process, always on the same port and data."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir, self.log, self.port = data_dir, log, _free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, **settings: str) -> None:
        # Settings.load refuses unknown STAFETT_* variables: start from a clean slate.
        env = {k: v for k, v in os.environ.items() if not k.startswith("STAFETT_")}
        env.update(
            STAFETT_DATA_DIR=str(self.data_dir),
            STAFETT_PORT=str(self.port),
            STAFETT_GATEWAY_KEY_PASSPHRASE=PASSPHRASE,
            STAFETT_INSECURE_FAST_KDF="1",  # test mode
            STAFETT_RATE_LIMIT_PER_S="100000",
            STAFETT_RATE_LIMIT_BURST="100000",
        )
        env.update({f"STAFETT_{k.upper()}": v for k, v in settings.items()})
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _RUN_CLI, "serve", env=env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc.returncode is None, "the gateway exited at start-up"
                try:
                    async with http.get(f"{self.url}/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("the gateway did not become ready")

    async def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def died(self) -> None:
        """Wait for the gateway to kill itself (the test-mode crash switch)."""
        assert self.proc is not None
        async with asyncio.timeout(30):
            assert await self.proc.wait() == -signal.SIGKILL

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


def sdk(gp: GatewayProcess, gw: RunningGateway, kid: str, spool: Path) -> StafettClient:
    # Retries with the same sealed bytes (the SDK's own): a restart takes a second or two.
    return StafettClient(
        gp.url, device_keystore(gw, kid), retries=7, retry_backoff_s=0.2, spool_dir=spool
    )

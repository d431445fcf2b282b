"""Fixtures for the web inbox: a real gateway (SQLite), CLI-provisioned devices
(``tests/cli``), and ``stafett ui`` apps on 127.0.0.1:0."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

_TESTS = Path(__file__).resolve().parents[1]
for _path in (_TESTS / "gateway", _TESTS / "cli", _TESTS / "ui"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from cli_support import Cli, provision  # noqa: E402
from gateway_harness import RunningGateway, start_gateway, stop_gateway  # noqa: E402


@pytest.fixture(autouse=True)
def _ui_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STAFETT_HOME", "STAFETT_LANG", "STAFETT_GATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STAFETT_PASSPHRASE", "cli test passphrase")
    monkeypatch.setenv("STAFETT_KDF_COST", "test")


@pytest_asyncio.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    gateway = await start_gateway(tmp_path / "gw", f"sqlite+aiosqlite:///{tmp_path / 'gw.sqlite3'}")
    try:
        yield gateway
    finally:
        await stop_gateway(gateway)


@pytest_asyncio.fixture
async def cli(gw: RunningGateway, tmp_path: Path) -> Cli:
    """Devices sav/sara and so-nordost/nora set up with ``stafett init`` and enrolled."""
    return await provision(gw, tmp_path / "cli")

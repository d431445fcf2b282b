"""The suite's fixtures, loaded for every test through ``pytest_plugins`` in
``tests/conftest.py``: both stores (SQLite and a real PostgreSQL), a live gateway, and
CLI devices provisioned against one.

``store_url`` is parametrised over ``sqlite`` and ``postgres``; every test that uses it
(directly or through ``gateway``) runs on both. The PostgreSQL cluster is started once
per session from the binaries on PATH (initdb, pg_ctl), as the ``postgres`` user when we
run as root (initdb refuses root); each test gets a fresh database. Without the binaries
the postgres half is skipped — unless STAFETT_REQUIRE_POSTGRES=1 (CI), then it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from bench._postgres import throwaway_cluster
from gateway.db.engine import SessionMaker, make_sessionmaker, open_engine
from gateway.migrations import migrate
from tests.support.cli import Cli, provision
from tests.support.gateway import RunningGateway, start_gateway, stop_gateway

StartGateway = Callable[..., Awaitable[RunningGateway]]


@dataclass(frozen=True)
class PgCluster:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        if os.environ.get("STAFETT_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are required but not on PATH")
        pytest.skip("PostgreSQL binaries not on PATH")
    with throwaway_cluster("-c full_page_writes=off") as port:
        yield PgCluster("127.0.0.1", port, "postgres")


async def _admin_sql(cluster: PgCluster, sql: str) -> None:
    conn = await asyncpg.connect(cluster.dsn("postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each store."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = f"t_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin_sql(cluster, f'CREATE DATABASE "{name}"'))
    try:
        yield cluster.url(name)
    finally:
        asyncio.run(_admin_sql(cluster, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture
async def start(store_url: str, tmp_path: Path) -> AsyncIterator[StartGateway]:
    """Factory: ``await start(**settings_overrides, configure=fn)`` → RunningGateway."""
    started: list[RunningGateway] = []

    async def _start(**overrides: Any) -> RunningGateway:
        data_dir = tmp_path / f"data{len(started)}"
        gw = await start_gateway(data_dir, store_url, **overrides)
        started.append(gw)
        return gw

    yield _start
    for gw in started:
        await stop_gateway(gw)


@pytest_asyncio.fixture
async def gateway(start: StartGateway) -> RunningGateway:
    """The real app on 127.0.0.1:0 with a seeded directory (see tests.support.gateway)."""
    return await start()


@pytest_asyncio.fixture
async def db(store_url: str) -> AsyncIterator[SessionMaker]:
    """A migrated, empty store on each backend, with no gateway running: for the jobs
    and reports, which work on the database alone."""
    await migrate(store_url)
    engine = open_engine(store_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def second_store_url(
    store_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """Another empty database on the same kind of store (for a second, forked gateway)."""
    if store_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'second.sqlite3'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = f"t_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin_sql(cluster, f'CREATE DATABASE "{name}"'))
    try:
        yield cluster.url(name)
    finally:
        asyncio.run(_admin_sql(cluster, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- the officer's CLI against a live gateway (tests/clients/{cli,ui,bridge}) ------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean CLI environment: no developer settings, a test passphrase and KDF cost.
    The CLI, UI and bridge folders make it autouse in their conftest."""
    for name in ("STAFETT_HOME", "STAFETT_LANG", "STAFETT_GATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STAFETT_PASSPHRASE", "cli test passphrase")
    monkeypatch.setenv("STAFETT_KDF_COST", "test")


@pytest_asyncio.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    """A gateway on SQLite only (the CLI's tests are about the CLI, not the store)."""
    gateway = await start_gateway(tmp_path / "gw", f"sqlite+aiosqlite:///{tmp_path / 'gw.sqlite3'}")
    try:
        yield gateway
    finally:
        await stop_gateway(gateway)


@pytest_asyncio.fixture
async def cli(gw: RunningGateway, tmp_path: Path) -> Cli:
    """Devices sav/sara and so-nordost/nora set up with ``stafett init`` and enrolled."""
    return await provision(gw, tmp_path / "cli")

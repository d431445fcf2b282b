"""Fixtures for the SDK's end-to-end tests: the gateway fixtures, reused as they are.

``tests/gateway/conftest.py`` owns the stores (SQLite and a real PostgreSQL) and the
live gateway. pytest only loads a conftest for the directory it sits in, and
``pytest_plugins`` is refused outside the rootdir's conftest, so that module is loaded
here under a name of its own and its fixtures re-exported. The harness module
(``gateway_harness``) is imported by basename, as the gateway tests do (no package
``__init__.py`` under tests/: basenames must be unique).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

_GATEWAY_TESTS = Path(__file__).resolve().parents[1] / "gateway"
if str(_GATEWAY_TESTS) not in sys.path:
    sys.path.insert(0, str(_GATEWAY_TESTS))


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_gw = _load("stafett_gateway_fixtures", _GATEWAY_TESTS / "conftest.py")

# Re-exported fixtures (pytest collects them from this module's namespace).
pg_cluster = _gw.pg_cluster
store_url = _gw.store_url
start = _gw.start
gateway = _gw.gateway


@pytest.fixture
def second_store_url(
    store_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """Another empty database on the same kind of store (for a second, forked gateway)."""
    if store_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'second.sqlite3'}"
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = f"t_{uuid.uuid4().hex[:16]}"
    asyncio.run(_gw._admin_sql(cluster, f'CREATE DATABASE "{name}"'))
    try:
        yield cluster.url(name)
    finally:
        asyncio.run(_gw._admin_sql(cluster, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

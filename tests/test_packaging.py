"""What `pip install stafett` gives an officer: the client side, without the server.

The officer's SDK and both CLIs must load no ``gateway`` module and none of the gateway's
server-only dependencies (those come with ``stafett[gateway]``). Proven in a fresh
interpreter in which importing any of them fails, as on a machine without the extra.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_ONLY = ("gateway", "sqlalchemy", "aiosqlite", "asyncpg", "alembic", "apscheduler",
               "matplotlib")  # fmt: skip

_PROBE = """
import contextlib, importlib.abc, io, json, sys

BLOCKED = set(sys.argv[1].split(","))

class Blocker(importlib.abc.MetaPathFinder):
    # Stands for a machine where the gateway extra is not installed.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on an officer's machine")
        return None

sys.meta_path.insert(0, Blocker())
import clients.admin, clients.errors, clients.sdk, keys
import clients.ui.app, clients.bridge.service  # the web inbox and the case-system bridge
from clients.cli.main import main as officer_main
from clients.keys_admin.main import main as admin_main
for main in (officer_main, admin_main):
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        main(["--help"])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)))
"""


def test_sdk_and_clis_load_nothing_of_the_server() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(SERVER_ONLY)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert json.loads(out.stdout) == []


def test_the_probe_would_see_a_server_import() -> None:
    # The probe must be able to fail: loading the gateway app trips the blocker.
    probe = _PROBE.replace("import clients.admin,", "import gateway.app, clients.admin,")
    out = subprocess.run(
        [sys.executable, "-c", probe, ",".join(SERVER_ONLY)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert out.returncode != 0
    assert "is not installed on an officer's machine" in out.stderr


def test_server_dependencies_are_only_in_the_gateway_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = " ".join(project["dependencies"])
    extra = " ".join(project["optional-dependencies"]["gateway"])
    for name in ("sqlalchemy", "aiosqlite", "asyncpg", "alembic", "apscheduler", "matplotlib"):
        assert name not in base
        assert name in extra

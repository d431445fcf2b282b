"""The layers of docs/architecture.md, enforced on the import statements of the source.

Lowest first: the problem registry root (``keys.errors``) → crypto (the only nacl
importer) → protocol → domain → the edges (gateway | sdk | cli | admin CLI | ui |
bridge). A module imports only from its own layer or below; the officer's side never
imports the gateway and the gateway never imports the officer's side. Read from the AST,
so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keys", "gateway", "clients")

# (module prefix, layer). The longest matching prefix decides.
LAYERS: dict[str, int] = {
    "keys.errors": 0,
    "keys.crypto": 1,
    "keys.protocol": 2,
    "keys": 2,  # keys/__init__: the curated API over crypto and protocol
    "keys.domain": 3,
    "gateway": 4,
    "clients": 4,
}
EDGE = 4
CLIENT_SIDE = "clients"
SERVER_ONLY = ("aiohttp", "sqlalchemy", "alembic", "apscheduler", "asyncpg", "matplotlib")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > best[0]
        ):
            best = (len(prefix), layer)
    return None if best is None else best[1]


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every imported module (absolute), with its line; relative imports resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # ``from keys.protocol import envelope`` imports keys.protocol.envelope.
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """What is wrong with the imports of ``module`` (empty when it keeps the layers)."""
    own = layer_of(module)
    problems: list[str] = []
    for line, target in imports_of(source, module, is_package):
        top = target.split(".")[0]
        where = f"{module}:{line} imports {target}"
        if top == "nacl" and not module.startswith("keys.crypto"):
            problems.append(f"{where}: only keys.crypto may import nacl")
        if top in SERVER_ONLY and module.startswith("keys"):
            problems.append(f"{where}: keys/ (crypto, protocol, domain) is free of I/O frameworks")
        if top not in PACKAGES or own is None:
            continue
        theirs = layer_of(target)
        if theirs is None:
            continue
        if theirs > own:
            problems.append(f"{where}: upward import (layer {own} → {theirs})")
        elif own == theirs == EDGE and top != module.split(".")[0]:
            problems.append(f"{where}: {module.split('.')[0]} and {top} are separate edges")
    return problems


def project_modules() -> list[Path]:
    return sorted(
        p
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "migrations/versions" not in p.as_posix()
    )


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_keeps_the_layers(path: Path) -> None:
    module = module_name(path)
    assert violations(path.read_text(encoding="utf-8"), module, path.name == "__init__.py") == []


def test_the_client_side_never_imports_the_gateway() -> None:
    offenders = [
        f"{module_name(p)} imports {target}"
        for p in project_modules()
        if module_name(p).startswith(CLIENT_SIDE)
        for _, target in imports_of(p.read_text(encoding="utf-8"), module_name(p), False)
        if target.split(".")[0] == "gateway"
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("keys.protocol.envelope", "import nacl.bindings\n", "only keys.crypto may import nacl"),
        ("keys.domain.consent", "from sqlalchemy import select\n", "free of I/O frameworks"),
        ("keys.crypto.keypairs", "from keys.protocol import envelope\n", "upward import"),
        ("keys.protocol.receipt", "from ..domain import lifecycle\n", "upward import"),
        ("keys.domain.consent", "from gateway.db import models\n", "upward import"),
        ("clients.sdk.transport", "from gateway.db import models\n", "separate edges"),
        ("gateway.services.messages", "import clients.sdk\n", "separate edges"),
    ],
)
def test_the_checker_catches_a_wrong_import(module: str, source: str, expected: str) -> None:
    # The layer test must be able to fail: each of these imports breaks one rule.
    found = violations(source, module)
    assert found, f"{source!r} in {module} was not caught"
    assert expected in found[0]


def test_the_checker_accepts_downward_imports() -> None:
    source = "from keys.crypto.keypairs import SigningKey\nfrom keys.errors import KeysError\n"
    assert violations(source, "keys.domain.consent") == []
    assert violations("from keys.domain import lifecycle\n", "gateway.services.messages") == []


# The gateway's inside: services are plain async code over the database and the blob
# store; HTTP (aiohttp) is the views', the middlewares' and the push hub's. Checked on
# what really loads (transitively), in a fresh interpreter with aiohttp made unimportable.
_BLOCKED_IMPORT = """
import importlib, pkgutil, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"blocked: {{name}}")
        return None

sys.meta_path.insert(0, Block())
package = importlib.import_module({package!r})
for info in pkgutil.iter_modules(package.__path__):
    importlib.import_module(f"{package}.{{info.name}}")
"""


def _imports_without(package: str, blocked: set[str]) -> subprocess.CompletedProcess[str]:
    source = _BLOCKED_IMPORT.format(package=package, blocked=blocked)
    return subprocess.run(
        [sys.executable, "-c", source], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_the_gateway_services_load_without_aiohttp() -> None:
    result = _imports_without("gateway.services", {"aiohttp"})
    assert result.returncode == 0, result.stderr


def test_the_blocked_import_probe_can_fail() -> None:
    # The views are aiohttp's: the same probe must refuse them.
    result = _imports_without("gateway.views", {"aiohttp"})
    assert result.returncode != 0
    assert "blocked: aiohttp" in result.stderr


# All SQL is in gateway/db/ (one ``*_store.py`` per aggregate, plus the engine, the
# models and the audit trail writer) and gateway/migrations/. Elsewhere in the gateway
# SQLAlchemy is plumbing only: the types of the session and engine passed down (the
# transaction stays where the unit of work is), its exceptions (an IntegrityError
# handled, a URL refused), URL parsing, and the one after-commit hook that wakes the push
# stream. No ``select``/``update``/``delete``/``insert``/``text``/``func`` elsewhere.
SQL_HOMES = ("gateway.db", "gateway.migrations")
SQLALCHEMY_PLUMBING: dict[str, set[str] | None] = {  # module → allowed names (None: all)
    "sqlalchemy.ext.asyncio": {"AsyncSession", "AsyncEngine", "AsyncConnection"},
    "sqlalchemy.exc": None,
    "sqlalchemy.engine": {"Engine", "make_url"},
}
# The event log's after-commit wake (gateway/services/events.py): a session event hook,
# no SQL; it wakes gateway.push, which gateway/db must not import.
SQLALCHEMY_HOOKS = {
    "gateway.services.events": {"sqlalchemy": {"event"}, "sqlalchemy.orm": {"Session"}}
}


def sql_violations(source: str, module: str) -> list[str]:
    """SQLAlchemy imports of ``module`` beyond the plumbing allowed outside gateway/db."""
    if not module.startswith("gateway") or module.startswith(SQL_HOMES):
        return []
    allowed: dict[str, set[str] | None] = {
        **SQLALCHEMY_PLUMBING,
        **SQLALCHEMY_HOOKS.get(module, {}),
    }
    problems: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [(a.name, "") for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            names = [(node.module or "", a.name) for a in node.names]
        else:
            continue
        for source_module, name in names:
            permitted = allowed.get(source_module, set())
            if permitted is not None and name not in permitted:
                where = f"{module}:{node.lineno} imports {source_module} {name}".rstrip()
                problems.append(f"{where}: SQL belongs in gateway/db/")
    return problems


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_sql_lives_in_gateway_db(path: Path) -> None:
    assert sql_violations(path.read_text(encoding="utf-8"), module_name(path)) == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("gateway.services.webhooks", "from sqlalchemy import select\n"),
        ("gateway.jobs.retention", "import sqlalchemy\n"),
        ("gateway.recovery", "from sqlalchemy.orm import Session\n"),
        ("gateway.services.events", "from sqlalchemy import func\n"),
        ("gateway.observability.metrics", "from sqlalchemy.dialects import postgresql\n"),
    ],
)
def test_the_sql_checker_catches_a_query_outside_db(module: str, source: str) -> None:
    assert sql_violations(source, module), f"{source!r} in {module} was not caught"


def test_the_sql_checker_allows_the_plumbing() -> None:
    source = (
        "from sqlalchemy.ext.asyncio import AsyncSession\n"
        "from sqlalchemy.exc import IntegrityError\n"
        "from sqlalchemy.engine import make_url\n"
    )
    assert sql_violations(source, "gateway.services.messages") == []
    assert sql_violations("from sqlalchemy import select\n", "gateway.db.message_store") == []


# nacl stays behind keys/crypto at run time too: `keys/__init__` loads its curated API
# lazily (PEP 562), so a module that needs only the registry or the domain's refusals
# does not pull in crypto through the package; the ids, canonical JSON and the consent
# record parser are plain Python too. Checked with nacl made unimportable.
_NACL_FREE = [
    "keys.errors",
    "keys.protocol.refusals",
    "keys.protocol.vocabulary",
    "keys.crypto.ids",
    "keys.crypto.canonical",
    "keys.protocol.consent_record",
]
_PROBE = """
import importlib, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "nacl":
            raise ImportError(f"blocked: {{name}}")
        return None

sys.meta_path.insert(0, Block())
for name in {modules!r}:
    importlib.import_module(name)
"""


def _import_without_nacl(modules: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE.format(modules=modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_registry_and_the_refusals_load_without_nacl() -> None:
    result = _import_without_nacl(_NACL_FREE)
    assert result.returncode == 0, result.stderr


def test_the_nacl_probe_can_fail() -> None:
    result = _import_without_nacl(["keys.crypto.keypairs"])
    assert result.returncode != 0
    assert "blocked: nacl" in result.stderr


# The domain is pure rules: its ids come from the nacl-free keys.crypto.ids, the consent
# record it judges parses without libsodium (signing and verifying take the caller's key
# objects), and canonical JSON and its hashes use hashlib's BLAKE2b.
def test_every_domain_module_loads_without_nacl() -> None:
    domain = sorted(
        module_name(p) for p in (ROOT / "keys" / "domain").glob("*.py") if p.name != "__init__.py"
    )
    result = _import_without_nacl(domain)
    assert result.returncode == 0, result.stderr

"""Fixtures for the bridge tests: the CLI tests' gateway and provisioned devices, reused.

Loaded from ``tests/cli/conftest.py`` under a name of its own (pytest only loads a
conftest for its own directory), as ``tests/integration/conftest.py`` does for the
gateway fixtures.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for _dir in ("gateway", "cli", "integration", "bridge"):
    if str(_TESTS / _dir) not in sys.path:
        sys.path.insert(0, str(_TESTS / _dir))

_spec = importlib.util.spec_from_file_location(
    "stafett_cli_fixtures", _TESTS / "cli" / "conftest.py"
)
assert _spec is not None
assert _spec.loader is not None
_cli = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("stafett_cli_fixtures", _cli)
_spec.loader.exec_module(_cli)

# Re-exported fixtures (pytest collects them from this module's namespace).
_cli_env = _cli._cli_env
gw = _cli.gw
cli = _cli.cli

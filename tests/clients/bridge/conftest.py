"""The bridge tests: a clean CLI environment for each; ``gw`` and ``cli`` come from
tests.support.fixtures.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _bridge_env(cli_env: None) -> None:
    """Every test here runs with ``cli_env`` (tests.support.fixtures)."""

"""The ``stafett`` CLI tests: a clean CLI environment for each (the ``gw`` and ``cli``
fixtures are in tests.support.fixtures). The CLI runs through ``clients.cli.main`` in a
worker thread, so the in-process gateway keeps answering on the test's event loop.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _cli_env(cli_env: None) -> None:
    """Every test here runs with ``cli_env`` (tests.support.fixtures)."""

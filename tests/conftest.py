"""The suite's root conftest: loads the one test support package, and guards that with
STAFETT_REQUIRE_POSTGRES=1 (CI) the PostgreSQL half runs.

``tests.support`` is a package (the only one under tests/; imported as ``tests.support``
from the root on ``pythonpath``); its fixtures (stores, gateway, CLI devices) are a
plugin, so every folder sees them without importing another folder's conftest. pytest
accepts ``pytest_plugins`` only in a conftest it loads first: this one.

With STAFETT_REQUIRE_POSTGRES=1 the PostgreSQL half must run.

A missing binary already fails the cluster fixture; this also catches the quieter ways
the half can vanish — every PostgreSQL test deselected, skipped or filtered out — so a
green CI always means both stores were exercised.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.support.fixtures", "tests.support.keys_admin"]

_passed_on_postgres = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _passed_on_postgres
    if report.when == "call" and report.passed and "postgres" in report.keywords:
        _passed_on_postgres += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("STAFETT_REQUIRE_POSTGRES") != "1" or exitstatus != 0:
        return
    if _passed_on_postgres == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(f"PostgreSQL tests passed: {_passed_on_postgres}")
    if os.environ.get("STAFETT_REQUIRE_POSTGRES") == "1" and _passed_on_postgres == 0:
        terminalreporter.write_line(
            "FAILED: STAFETT_REQUIRE_POSTGRES=1 but no PostgreSQL test ran", red=True
        )

"""Where the repository's files are, for tests in any folder (a test's own depth
under tests/ changes when the tree is re-laid out; this module's does not)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
TEST_DATA = REPO / "tests" / "data"

"""Fixtures shared across tests/keys modules (defined where they are mostly used)."""

from test_cli_keys import admin_dir, env

__all__ = ["admin_dir", "env"]

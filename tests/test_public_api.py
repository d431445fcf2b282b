"""The surfaces integrators import keep working from the same paths, and say what they are."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "clients.sdk": {"StafettClient"},
    "clients.admin": {"StafettAdminClient"},
    "clients.errors": {"ClientError", "GatewayUnavailable", "UnexpectedResponse"},
    "keys": {"seal", "open_envelope", "Directory", "Keystore", "KeysError", "canonical_json"},
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_surface_is_declared_and_importable(module: str) -> None:
    mod = importlib.import_module(module)
    exported = set(mod.__all__)
    assert PUBLIC[module] <= exported
    for name in exported:
        assert getattr(mod, name) is not None

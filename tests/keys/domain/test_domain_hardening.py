"""Properties of the domain core as a whole: purity, error codes, no leaks."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from keys.errors import ALL_ERRORS
from keys.protocol.refusals import ALL_POLICY_ERRORS, PolicyError
from tests.support.paths import REPO

ROOT = REPO
POLICY_DIR = ROOT / "gateway" / "policy"
FORBIDDEN = ("aiohttp", "sqlalchemy", "apscheduler", "nacl", "asyncio", "os", "socket", "time")


def test_policy_modules_import_no_io_or_crypto_libraries() -> None:
    for path in POLICY_DIR.glob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_importing_the_policy_pulls_in_no_server_libraries() -> None:
    code = (
        "import sys, keys.domain; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('aiohttp', 'sqlalchemy', 'apscheduler')]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_policy_codes_are_unique_snake_case_with_a_status() -> None:
    codes = [cls.code for cls in ALL_POLICY_ERRORS]
    assert len(codes) == len(set(codes))
    for cls in ALL_POLICY_ERRORS:
        assert issubclass(cls, PolicyError)
        assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.code)
        assert cls.status in {400, 403, 409, 422}
        assert cls.__doc__


def test_policy_and_keys_codes_do_not_collide() -> None:
    policy = {cls.code for cls in ALL_POLICY_ERRORS}
    keys = {cls.code for cls in ALL_ERRORS}
    assert not policy & keys
    assert len(keys) == len(ALL_ERRORS)
    for code in (
        "consent_record_invalid",
        "consent_signature_invalid",
        "receipt_invalid",
        "receipt_mismatch",
        "receipt_signature_invalid",
        "audit_chain_broken",
        "audit_entry_altered",
        "audit_checkpoint_mismatch",
        "audit_truncated",
        "audit_checkpoint_signature_invalid",
        "audit_data_forbidden",
    ):
        assert code in keys

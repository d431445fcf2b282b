"""The security admin's ``stafett-keys``, called in-process: its environment and the
helpers that run it (``tests/clients/keys_admin`` and the directory tests use them).
Loaded as a plugin (``tests/conftest.py``) for the ``env`` and ``admin_dir`` fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clients.keys_admin.main import main
from clients.keys_admin.store import Workspace
from keys.crypto.keypairs import DeviceKeyPair, KeyId
from keys.protocol.directory import Directory
from keys.protocol.enrolment import make_enrolment_request

PASS = "correct horse battery staple"
T0 = 1_760_000_000


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    # Environment is the CLI's documented input (passphrase, KDF cost, directory).
    monkeypatch.setenv("STAFETT_PASSPHRASE", PASS)
    monkeypatch.setenv("STAFETT_KDF_COST", "test")
    monkeypatch.setenv("STAFETT_KEYS_DIR", str(tmp_path / "admin"))
    return tmp_path / "admin"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, ""), err
    return out


def refused(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 1) -> str:
    got, _out, err = run(capsys, *argv)
    assert got == code
    assert err.startswith("stafett-keys: ")
    assert err.count("\n") == 1, err  # exactly one line
    assert "Traceback" not in err
    return err


def request_file(tmp_path: Path, device: str, version: int = 1) -> Path:
    unit, name = device.split("/")
    pair = DeviceKeyPair.generate(KeyId(unit, name, version))
    path = tmp_path / f"{unit}-{name}-{version}.json"
    request = make_enrolment_request(pair, T0, rotation=version > 1)
    path.write_text(json.dumps(request.to_json(), indent=2))  # any JSON spelling is fine
    return path


@pytest.fixture
def admin_dir(env: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    ok(capsys, "init", "--admin", "root")
    ok(capsys, "unit", "create", "so-nordost", "--kind", "district", "--name", "SO Nordost")
    return env


def verified(path: Path) -> Directory:
    return Workspace(path).verify().directory

"""stafett-keys, called in-process (``clients.keys_admin.main.main``) and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keys.crypto.keypairs import KeyId, VerifyKey
from keys.protocol.directory import Directory, DirectoryEntry
from tests.support.keys_admin import PASS, ok, refused, request_file, verified


def test_init_creates_a_verifiable_trust_root(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ok(capsys, "init", "--admin", "root")
    assert "admin/root/1" in out
    assert {p.name for p in env.iterdir()} == {
        "admin.keystore",
        "trust-root.json",
        "directory.jsonl",
        "checkpoint.json",
    }
    assert (env / "admin.keystore").stat().st_mode & 0o077 == 0
    assert PASS not in (env / "admin.keystore").read_text()
    root = json.loads((env / "trust-root.json").read_text())
    VerifyKey.from_b64(root["admins"]["admin/root/1"])
    assert verified(env).size == 1
    # A second init in the same place would start a second trust root: refused.
    assert "already exists" in refused(capsys, "init", "--admin", "root")


def test_enrol_rotate_destroy_revoke(
    admin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ok(capsys, "device", "enrol", str(request_file(tmp_path, "so-nordost/anna")), "--contact")
    assert "signing fingerprint" in out
    ok(capsys, "device", "rotate", str(request_file(tmp_path, "so-nordost/anna", 2)))
    assert "raise min_encryption_version" in refused(
        capsys, "key", "destroy", "so-nordost/anna", "1"
    )
    rotation = request_file(tmp_path, "so-nordost/anna", 3)
    ok(capsys, "device", "rotate", str(rotation), "--min-version", "2")
    ok(capsys, "key", "destroy", "so-nordost/anna", "1")
    record = verified(admin_dir).devices["so-nordost/anna"]
    assert record.contact
    assert {v: k.status for v, k in record.versions.items()} == {
        1: "destroyed",
        2: "retired",
        3: "active",
    }
    ok(capsys, "device", "revoke", "so-nordost/anna", "--reason", "lost")
    assert verified(admin_dir).devices["so-nordost/anna"].revoked
    err = refused(capsys, "device", "revoke", "so-nordost/anna", "--reason", "lost")
    assert "directory_entry_invalid" in err


def test_show_and_verify(
    admin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "device", "enrol", str(request_file(tmp_path, "so-nordost/anna")))
    directory = verified(admin_dir)
    fpr = directory.devices["so-nordost/anna"].versions[1].verify_key.fingerprint()
    assert fpr in ok(capsys, "show")
    shown = json.loads(ok(capsys, "show", "--json"))
    assert shown["size"] == 3
    assert shown["devices"][0]["versions"][0]["signing_fingerprint"] == fpr
    assert shown["units"] == [{"unit": "so-nordost", "kind": "district", "name": "SO Nordost"}]
    result = json.loads(ok(capsys, "verify", "--json"))
    assert result["ok"] is True
    assert result["head"] == directory.head.hex()
    assert result["checkpoint"]["size"] == 3
    assert ok(capsys, "verify").startswith("ok: 3 entries")


def test_a_tampered_log_is_refused_and_never_extended(
    admin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = admin_dir / "directory.jsonl"
    lines = log.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["body"]["name"] = "Someone else"
    log.write_text(
        lines[0] + "\n" + json.dumps(edited, sort_keys=True, separators=(",", ":")) + "\n"
    )
    assert "directory_signature_invalid" in refused(capsys, "verify")
    before = log.read_bytes()
    refused(capsys, "unit", "create", "sav", "--kind", "sav", "--name", "SAV")
    assert log.read_bytes() == before  # nothing signed on top of the edit


def test_a_rolled_back_log_is_refused_by_the_checkpoint(
    admin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = admin_dir / "directory.jsonl"
    log.write_text(log.read_text().splitlines()[0] + "\n")  # drop the newest entry
    assert "directory_behind" in refused(capsys, "verify")


def test_a_forked_log_is_refused_by_the_checkpoint(
    admin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Keep a copy of the state at size 2, continue in two directions, swap the logs.
    fork = tmp_path / "fork"
    fork.mkdir()
    for name in ("admin.keystore", "trust-root.json", "directory.jsonl", "checkpoint.json"):
        (fork / name).write_bytes((admin_dir / name).read_bytes())
    ok(capsys, "unit", "create", "sav", "--kind", "sav", "--name", "SAV")
    ok(
        capsys,
        "unit",
        "create",
        "socialjour",
        "--kind",
        "socialjour",
        "--name",
        "SJ",
        "--dir",
        str(fork),
    )
    (admin_dir / "directory.jsonl").write_bytes((fork / "directory.jsonl").read_bytes())
    assert "directory_forked" in refused(capsys, "verify")


def test_admin_add_and_remove(
    admin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eva_dir = tmp_path / "eva"
    eva_dir.mkdir()
    (eva_dir / "trust-root.json").write_bytes((admin_dir / "trust-root.json").read_bytes())
    out = ok(capsys, "admin", "keygen", "--admin", "eva", "--dir", str(eva_dir))
    command = next(line for line in out.splitlines() if "admin add" in line)
    kid, key = command.split()[-2:]
    ok(capsys, "admin", "add", kid, key)
    assert "last security admin" not in ok(capsys, "admin", "remove", "admin/root/1")
    # The removed root can no longer sign ...
    assert "is not a current security admin" in refused(
        capsys, "unit", "create", "sav", "--kind", "sav", "--name", "SAV"
    )
    # ... but eva can, once she has the log; and she cannot remove herself as the last one.
    for name in ("directory.jsonl", "checkpoint.json"):
        (eva_dir / name).write_bytes((admin_dir / name).read_bytes())
    ok(capsys, "unit", "create", "sav", "--kind", "sav", "--name", "SAV", "--dir", str(eva_dir))
    err = refused(capsys, "admin", "remove", "admin/eva/1", "--dir", str(eva_dir))
    assert "last security admin cannot be removed" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["device", "enrol", "/nonexistent/request.json"], "request not found"),
        (["device", "revoke", "so-nordost/nobody", "--reason", "lost"], "directory_unknown_key"),
        (["device", "revoke", "not a device", "--reason", "lost"], "key_id_invalid"),
        (["admin", "add", "admin/eva/1", "AAAA"], "key_invalid"),
        (
            ["unit", "create", "Bad Name", "--kind", "other", "--name", "x"],
            "directory_entry_invalid",
        ),
    ],
)
def test_errors_are_one_line_without_traceback(
    admin_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert needle in refused(capsys, *argv)


def test_a_wrong_passphrase_and_usage_errors(
    admin_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAFETT_PASSPHRASE", "not the passphrase")
    err = refused(capsys, "unit", "create", "sav", "--kind", "sav", "--name", "SAV")
    assert "keystore_wrong_passphrase" in err
    assert "not the passphrase" not in err
    assert "usage error" in refused(capsys, "device", "revoke", "so-nordost/anna", code=2)
    assert "usage error" in refused(capsys, "no-such-command", code=2)
    assert "usage error" in refused(capsys, code=2)


def test_no_passphrase_without_a_terminal(
    admin_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STAFETT_PASSPHRASE")
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115 -- closed by pytest
    assert "STAFETT_PASSPHRASE" in refused(
        capsys, "unit", "create", "sav", "--kind", "sav", "--name", "S"
    )


def test_a_short_passphrase_is_refused_for_a_new_keystore(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAFETT_PASSPHRASE", "short")
    assert "at least" in refused(capsys, "init", "--admin", "root")
    assert not (env / "admin.keystore").exists()


def test_the_console_script_runs_as_a_subprocess(admin_dir: Path, tmp_path: Path) -> None:
    environ = {
        **os.environ,
        "STAFETT_PASSPHRASE": PASS,
        "STAFETT_KDF_COST": "test",
        "STAFETT_KEYS_DIR": str(admin_dir),
    }
    script = Path(sys.executable).parent / "stafett-keys"
    command = (
        [str(script)] if script.exists() else [sys.executable, "-m", "clients.keys_admin.main"]
    )
    request = request_file(tmp_path, "so-nordost/anna")
    done = subprocess.run(
        [*command, "device", "enrol", str(request)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*command, "verify", "--json"], env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert json.loads(done.stdout)["size"] == 3
    done = subprocess.run(
        [*command, "device", "enrol", str(request)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("stafett-keys: error: ")
    assert "Traceback" not in done.stderr


def test_the_log_file_is_the_unit_of_exchange(
    admin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "device", "enrol", str(request_file(tmp_path, "so-nordost/anna")))
    # A device that pinned the trust root verifies the exported log line by line.
    root = json.loads((admin_dir / "trust-root.json").read_text())
    pinned = {kid: VerifyKey.from_b64(key) for kid, key in root["admins"].items()}
    directory = Directory(pinned)
    for line in (admin_dir / "directory.jsonl").read_text().splitlines():
        directory.append(DirectoryEntry.from_json(json.loads(line)))
    assert directory.size == 3
    assert [k.kid for k in directory.encryption_keys("so-nordost")] == [
        KeyId("so-nordost", "anna", 1)
    ]

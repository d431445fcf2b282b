"""deploy/ checked by the tools an operator's machine has: nginx -t, systemd-analyze,
the compose-spec schema, and the sample settings loading as the gateway loads them.

.ci/run installs nginx (apt-get) when it is missing; without it these checks skip
only when nginx could not be installed at all.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _self_signed(tmp: Path) -> Path:
    tls = tmp / "tls"
    tls.mkdir()
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=stafett.example",
            "-keyout", str(tls / "privkey.pem"), "-out", str(tls / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return tls


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None or shutil.which("openssl") is None:
        pytest.skip("nginx or openssl not installed (.ci/run installs nginx with apt-get)")
    tls = _self_signed(tmp_path)
    # The compose network's names do not resolve here, and the certificate lives in tmp:
    # only those two things change; every directive is tested as shipped.
    site = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    site = site.replace("gateway-a:8787", "127.0.0.1:18787").replace(
        "gateway-b:8787", "127.0.0.1:18788"
    )
    site = site.replace("/etc/nginx/tls", str(tls))
    assert "limit_req " in site
    assert "limit_conn " in site
    assert "client_header_timeout" in site
    (tmp_path / "stafett.conf").write_text(site, encoding="utf-8")
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
        "events {}\n"
        f"http {{\n  access_log off;\n  include {tmp_path / 'stafett.conf'};\n}}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [nginx, "-t", "-c", str(main), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    unit = (DEPLOY / "stafett-gateway.service").read_text(encoding="utf-8")
    assert "LimitNOFILE=" in unit
    assert "--config /etc/stafett/gateway.toml" in unit
    # The unit names the installed path; verify checks that the command exists.
    installed = Path(sys.executable).parent / "stafett-gateway"
    unit = unit.replace("/opt/stafett/venv/bin/stafett-gateway", str(installed))
    (tmp_path / "stafett-gateway.service").write_text(unit, encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "stafett-gateway.service")],
        capture_output=True,
        text=True,
    )
    problems = [line for line in result.stderr.splitlines() if "stafett-gateway.service" in line]
    assert result.returncode == 0, result.stderr
    assert not problems, problems


def test_compose_file_follows_the_compose_spec() -> None:
    tool = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sample_settings_load() -> None:
    settings = Settings.load(DEPLOY / "gateway.toml", {})
    assert settings.data_dir.is_absolute()
    assert settings.log_format == "json"
    assert settings.host == "127.0.0.1"

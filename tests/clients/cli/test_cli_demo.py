"""``make demo`` end to end: the real CLIs, a real gateway process, every step checked."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from tests.support.paths import REPO

ROOT = REPO


@pytest.mark.slow
def test_demo_runs_every_flow_and_leaves_nothing_running() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAFETT_")}
    result = subprocess.run(
        [sys.executable, "-m", "clients.demo.flows"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,  # < 60 s on an idle machine; CI runners are shared
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for step in range(11):  # 8 and 9: key rotation and revocation
        assert f"\n{step}. " in "\n" + result.stdout
    assert "✗" not in result.stdout + result.stderr
    assert "Gatewayn är stoppad" in result.stdout
    assert "nyckelfil glömmer den" in result.stdout  # the destroyed key left the keystore
    # Nothing left running: the gateway's port no longer answers.
    match = re.search(r"http://127\.0\.0\.1:(\d+)", result.stdout)
    assert match is not None
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", int(match.group(1))))

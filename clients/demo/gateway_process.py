"""The one child-process gateway launcher: ``stafett-gateway init`` / ``migrate`` /
``serve`` as an operator runs them, on SQLite in a data dir, on a free loopback port.

Used by the demo (``make demo``, ``make run``), by ``bench/`` and, through
``tests.support``, by the tests that kill a gateway process. It lives here, beside the
demo, because the demo must run from the repository without the test tree; like the
rest of ``clients/demo/`` it is not in the wheel. The in-process launcher the tests use
is ``tests.support.gateway``.

Passphrases passed in are throwaway test values; ``STAFETT_INSECURE_FAST_KDF`` only
cheapens the gateway key's keystore at start-up, never anything on the request path.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

STARTUP_TIMEOUT_S = 30.0
# How to run each tool without its console script (``python <args>``).
_FALLBACK = {
    "stafett": ["-m", "clients.cli.main"],
    "stafett-keys": ["-m", "clients.keys_admin.main"],
    "stafett-gateway": [
        "-c",
        "import sys; from gateway.cli import main; sys.exit(main(sys.argv[1:]))",
    ],
}


class GatewayFailed(Exception):
    """The gateway process did not start, or a set-up command failed."""


def tool(name: str) -> list[str]:
    """The console script next to this Python, or ``python -m`` as a fallback."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    fallback = _FALLBACK.get(name)
    if fallback is None:
        raise GatewayFailed(f"{name} is not installed next to {sys.executable}: run make install")
    return [sys.executable, *fallback]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any STAFETT_* (the gateway refuses unknown
    STAFETT_ settings, and a developer's own settings must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAFETT_")}
    env.update(extra)
    return env


@dataclass
class GatewayProcess:
    """``stafett-gateway`` in a child process; ``settings`` are extra STAFETT_* values
    (``{"rate_limit_per_s": "1000"}``)."""

    data_dir: Path
    passphrase: str
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    verify_key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "gateway.sqlite3"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise GatewayFailed("the gateway is not running")
        return self.process.pid

    def env(self) -> dict[str, str]:
        return clean_env(
            STAFETT_DATA_DIR=str(self.data_dir),
            STAFETT_PORT=str(self.port),
            STAFETT_HOST="127.0.0.1",
            STAFETT_GATEWAY_KEY_PASSPHRASE=self.passphrase,
            STAFETT_INSECURE_FAST_KDF="1",
            **{f"STAFETT_{k.upper()}": v for k, v in self.settings.items()},
        )

    def command(self, *args: str) -> str:
        """Run ``stafett-gateway <args>`` to completion; its stdout."""
        proc = subprocess.run(
            [*tool("stafett-gateway"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise GatewayFailed(f"stafett-gateway {args[0]} failed: {proc.stderr.strip()}")
        return proc.stdout

    def init(self, pins: dict[str, str]) -> None:
        """``init --pin-admin kid=key ...``: the gateway key; remembers its verify key."""
        args = ["init"]
        for kid, key in pins.items():
            args += ["--pin-admin", f"{kid}={key}"]
        for line in self.command(*args).splitlines():
            if line.startswith("verify key"):
                self.verify_key = line.rsplit(" ", 1)[1].strip()
        if not self.verify_key:
            raise GatewayFailed("stafett-gateway init did not print its verify key")

    def start(self, log: Path, *, migrate: bool = True) -> None:
        """``serve`` (``--migrate`` first unless told); returns once /readyz answers 200."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [*tool("stafett-gateway"), "serve", *(["--migrate"] if migrate else [])]
        with log.open("ab") as handle:
            self.process = subprocess.Popen(
                argv,
                env=self.env(),
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our signal, not the terminal's Ctrl-C, stops it
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise GatewayFailed(f"the gateway exited at start-up; see {log}")
            if _ready(f"{self.url}/readyz"):
                return
            time.sleep(0.1)
        self.stop()
        raise GatewayFailed(f"the gateway did not answer within {STARTUP_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # the CLI shuts down cleanly
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _ready(url: str) -> bool:
    # A fixed http://127.0.0.1 URL we built ourselves (S310 is about user-given URLs).
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False

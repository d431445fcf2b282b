"""Plumbing for ``clients.demo.flows``: run the real CLIs, start and stop a real gateway.

Everything runs in a temp directory, on 127.0.0.1, with a fixed test passphrase and
the keystore's *test* KDF cost (``STAFETT_KDF_COST=test``, ``STAFETT_INSECURE_FAST_KDF``):
fast, and never a setting for real data.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DEMO_PASSPHRASE = "demo passphrase, never for real data"  # noqa: S105 (demo only)
GATEWAY_PASSPHRASE = "demo gateway passphrase"  # noqa: S105 (demo only)
STARTUP_TIMEOUT_S = 30.0


_WEEKDAYS = ("mån", "tis", "ons", "tor", "fre", "lör", "sön")


def stockholm(ts: int) -> str:
    """``mån 2026-11-23 12:00``: the units' wall clock, whatever the machine's zone."""
    local = datetime.fromtimestamp(ts, ZoneInfo("Europe/Stockholm"))
    return f"{_WEEKDAYS[local.weekday()]} {local:%Y-%m-%d %H:%M}"


class DemoFailed(Exception):
    """A step did not behave as expected (the message says which and how)."""


def tool(name: str) -> list[str]:
    """The console script next to this Python, or ``python -m`` as a fallback."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    module = {"stafett": "clients.cli.main", "stafett-keys": "clients.keys_admin.main"}.get(name)
    if module is None:
        raise DemoFailed(f"{name} is not installed next to {sys.executable}: run make install")
    return [sys.executable, "-m", module]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any STAFETT_* (the gateway refuses unknown
    STAFETT_ settings, and a developer's own settings must not leak into the demo)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAFETT_")}
    env.update(extra)
    return env


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if not lines:
            raise DemoFailed("expected JSON output, got nothing")
        return json.loads(lines[-1])


@dataclass
class Runner:
    root: Path
    verbose: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        argv: list[str],
        *,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Result:
        started = time.monotonic()
        proc = subprocess.run(
            argv,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=env or self.env,
            cwd=self.root,
            timeout=timeout,
            check=False,
        )
        if self.verbose:
            shown = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv))
            print(f"    $ {shown}  [{time.monotonic() - started:.1f} s]", flush=True)
        return Result(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Gateway:
    """``stafett-gateway serve`` as a child process on a free loopback port."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    verify_key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return clean_env(
            STAFETT_DATA_DIR=str(self.data_dir),
            STAFETT_PORT=str(self.port),
            STAFETT_HOST="127.0.0.1",
            STAFETT_GATEWAY_KEY_PASSPHRASE=GATEWAY_PASSPHRASE,
            STAFETT_INSECURE_FAST_KDF="1",
        )

    def init(self, runner: Runner, pins: dict[str, str]) -> None:
        argv = [*tool("stafett-gateway"), "init"]
        for kid, key in pins.items():
            argv += ["--pin-admin", f"{kid}={key}"]
        result = runner.run(argv, env=self.env())
        if result.status != 0:
            raise DemoFailed(f"stafett-gateway init failed: {result.stderr.strip()}")
        for line in result.stdout.splitlines():
            if line.startswith("verify key"):
                self.verify_key = line.rsplit(" ", 1)[1].strip()
        if not self.verify_key:
            raise DemoFailed("stafett-gateway init did not print its verify key")

    def start(self, log: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as handle:
            self.process = subprocess.Popen(
                [*tool("stafett-gateway"), "serve", "--migrate"],
                env=self.env(),
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our signal, not the terminal's Ctrl-C, stops it
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DemoFailed(f"the gateway exited at start-up; see {log}")
            if _healthy(f"{self.url}/healthz"):
                return
            time.sleep(0.2)
        raise DemoFailed(f"the gateway did not answer within {STARTUP_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _healthy(url: str) -> bool:
    # A fixed http://127.0.0.1 URL we built ourselves (S310 is about user-given URLs).
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def minimal_pdf(title: str) -> bytes:
    """A small, valid one-page PDF (correct xref offsets), written by hand."""
    text = title.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)

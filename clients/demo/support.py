"""Plumbing for ``clients.demo.flows``: run the real CLIs (the gateway process itself is
``clients.demo.gateway_process``, shared with ``bench/`` and the tests).

Everything runs in a temp directory, on 127.0.0.1, with a fixed test passphrase and
the keystore's *test* KDF cost (``STAFETT_KDF_COST=test``, ``STAFETT_INSECURE_FAST_KDF``):
fast, and never a setting for real data.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from clients.demo.gateway_process import GatewayFailed

DEMO_PASSPHRASE = "demo passphrase, never for real data"  # noqa: S105 (demo only)
GATEWAY_PASSPHRASE = "demo gateway passphrase"  # noqa: S105 (demo only)


_WEEKDAYS = ("mån", "tis", "ons", "tor", "fre", "lör", "sön")


def stockholm(ts: int) -> str:
    """``mån 2026-11-23 12:00``: the units' wall clock, whatever the machine's zone."""
    local = datetime.fromtimestamp(ts, ZoneInfo("Europe/Stockholm"))
    return f"{_WEEKDAYS[local.weekday()]} {local:%Y-%m-%d %H:%M}"


# One exception for "the demo did not behave": the launcher's failures count as such.
DemoFailed = GatewayFailed


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

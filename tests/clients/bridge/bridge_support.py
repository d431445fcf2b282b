"""Drops, bridge runs (a real subprocess) and gateway looks for the bridge tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import Cli
from tests.support.gateway import RunningGateway
from tests.support.paths import REPO
from tests.support.sdk import sql

REPO = REPO
PNR = "19121212-1212"  # Skatteverket's test personnummer (the one tests.support.cli records)
DOC = b"%PDF-1.4 utredning enligt 11 kap. SoL\n" * 500


@dataclass
class Run:
    status: int
    out: str
    err: str


async def _spawn(
    cli: Cli, who: str, root: Path, *extra: str, crash: str | None = None
) -> asyncio.subprocess.Process:
    env = dict(os.environ)
    env.pop("STAFETT_BRIDGE_CRASH_AT", None)
    if crash is not None:
        env["STAFETT_BRIDGE_CRASH_AT"] = crash
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clients.cli.main",
        "--home",
        str(cli.home(who)),
        "bridge",
        "--root",
        str(root),
        *extra,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def start_service(cli: Cli, who: str, root: Path) -> asyncio.subprocess.Process:
    """The bridge as a long-running service, polling every 0.2 s."""
    return await _spawn(cli, who, root, "--interval", "0.2", "--no-receive")


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll a file-system condition (another process changes it) for up to 30 s."""
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the bridge did not get there within 30 s")


async def run_bridge(cli: Cli, who: str, root: Path, *extra: str, crash: str | None = None) -> Run:
    """One ``stafett bridge --once`` round as its own process (SIGKILL is real)."""
    proc = await _spawn(cli, who, root, "--once", *extra, crash=crash)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def drop(
    outbox: Path,
    stem: str,
    consent: str,
    *,
    content: bytes = DOC,
    name: str | None = None,
    write_document: bool = True,
    **changes: Any,
) -> dict[str, Any]:
    """Write a document and its sidecar (the sidecar last, as the contract says)."""
    outbox.mkdir(parents=True, exist_ok=True)
    name = name or f"{stem}.pdf"
    if write_document:
        (outbox / name).write_bytes(content)
    sidecar: dict[str, Any] = {
        "v": 1,
        "to": {"unit": "sav"},
        "category": "case_transfer",
        "purpose": "transfer_to_sav",
        "consent_id": consent,
        "subject": {"personnummer": PNR},
        "case_reference": "SOC-2026-0042",
        "documents": [
            {"name": name, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        ],
    }
    sidecar.update(changes)
    sidecar = {k: v for k, v in sidecar.items() if v is not None}
    (outbox / f"{stem}.stafett.json").write_text(json.dumps(sidecar))
    return sidecar


async def consent_to_sav(cli: Cli) -> str:
    return await cli.record_consent(
        "nora", "so-nordost:sav", category="case_transfer", purpose="transfer_to_sav"
    )


async def messages_from(gw: RunningGateway, unit: str) -> list[tuple[str, str]]:
    """(id, state) of every message a unit's devices sent."""
    rows = await sql(gw, "SELECT id, state FROM messages WHERE sender_kid LIKE :u", u=f"{unit}/%")
    return [(str(r[0]), str(r[1])) for r in rows]


def handovers(inbox: Path) -> list[Path]:
    return sorted(p for p in inbox.iterdir() if p.is_dir()) if inbox.exists() else []

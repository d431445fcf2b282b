"""The end-to-end example in docs/integration.md runs as written, against a real gateway."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest
from bridge_support import consent_to_sav, handovers

from tests.support.cli import Cli
from tests.support.paths import REPO

pytestmark = pytest.mark.asyncio
DOC = REPO / "docs" / "integration.md"


def example() -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(
        r"<!-- example:start -->\n```sh\n(.*?)```\n<!-- example:end -->", text, re.DOTALL
    )
    assert match, "docs/integration.md lost its example block"
    return match.group(1)


async def test_the_documented_example_runs_as_written(cli: Cli, tmp_path: Path) -> None:
    consent_id = await consent_to_sav(cli)
    work = tmp_path / "work"
    env = {
        **os.environ,
        "SENDER_HOME": str(cli.home("nora")),
        "RECEIVER_HOME": str(cli.home("sara")),
        "CONSENT_ID": consent_id,
        "WORK": str(work),
        # `stafett` as installed next to this interpreter (the venv's console script).
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        example(),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, (out.decode(), err.decode())
    assert '"accepted": true' in out.decode()
    assert '"case_reference": "NO-2026-42"' in out.decode()
    (handover,) = handovers(work / "sav" / "inbox")
    record = json.loads((handover / "handover.json").read_text())
    assert record["consent_id"] == consent_id
    assert (handover / "documents" / "files" / "utredning.pdf").read_text() == (
        "Utredning enligt 11 kap. SoL\n"
    )

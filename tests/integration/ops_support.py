"""Helpers for the operations tests (chaos, backup and restore): the audit trail
exported through the admin SDK and verified offline by the real ``stafett-keys``
command, and a scan of a directory tree for envelope bytes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from clients.admin import StafettAdminClient
from clients.keys_admin.audit import EXPORT_FORMAT
from keys.crypto.keypairs import VerifyKey
from tests.support.gateway import RunningGateway
from tests.support.sdk import admin_keystore

STAFETT_KEYS = Path(sys.executable).parent / "stafett-keys"


async def export_audit(url: str, gw: RunningGateway, out: Path) -> int:
    """Write what ``stafett admin audit-export`` writes; returns the checkpoint's size."""
    sdk = StafettAdminClient(url, admin_keystore(gw), retry_backoff_s=0)
    async with sdk:
        checkpoint = await sdk.audit_checkpoint()
        entries = await sdk.audit_entries()
    size = int(checkpoint["size"])
    doc = {
        "format": EXPORT_FORMAT,
        "v": 1,
        "exported_at": int(time.time()),
        "entries": entries[:size],
        "checkpoints": [checkpoint],
    }
    await asyncio.to_thread(out.write_text, json.dumps(doc), encoding="utf-8")
    return size


def verify_offline(export: Path, gateway_key: VerifyKey) -> str:
    """``stafett-keys audit verify`` as an auditor runs it; its one-line verdict."""
    result = subprocess.run(
        [
            str(STAFETT_KEYS),
            "audit",
            "verify",
            "--file",
            str(export),
            "--gateway-key",
            gateway_key.b64(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()

"""Backup and restore as docs/ops/backup-restore.md tells an operator to do it.

A gateway on SQLite takes traffic (a consent, two messages, one handed over); while it
runs, the operator backs up the database with SQLite's online backup API (what
``sqlite3 gateway.sqlite3 ".backup FILE"`` does), the blob directory and the gateway
keystore. The backup is restored into a fresh data directory, ``stafett-gateway
migrate`` runs on it and a real ``stafett-gateway serve`` starts there. Then:

- it is the same gateway (the same key), and the restored audit trail verifies offline
  (``stafett-keys audit verify``) and against the checkpoint an auditor kept before;
- the pending message is listed and collectable with the plaintext that was sent, and
  once acknowledged its content is gone from the restored data directory;
- the message handed over before the backup stays gone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from ops_support import export_audit, verify_offline

from clients.admin import StafettAdminClient
from clients.sdk import StafettClient
from keys.protocol.problems import MessageGone
from tests.support.gateway import PASSPHRASE, start_gateway, stop_gateway
from tests.support.process import GatewayProcess, sdk
from tests.support.scan import envelope_markers, files_holding
from tests.support.sdk import ANNA, BO, admin, admin_keystore, client, message_args, record_consent

GATEWAY_CLI = Path(sys.executable).parent / "stafett-gateway"


def back_up(data_dir: Path, backup: Path) -> None:
    """The three things a gateway host holds: database, blobs, gateway keystore."""
    backup.mkdir()
    # The online backup API copies a consistent snapshot while the gateway writes
    # (a plain file copy of a database in WAL mode may miss committed pages).
    src = sqlite3.connect(data_dir / "gateway.sqlite3")
    dst = sqlite3.connect(backup / "gateway.sqlite3")
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    shutil.copytree(data_dir / "blobs", backup / "blobs")
    shutil.copy2(data_dir / "gateway-key.json", backup / "gateway-key.json")


def restore(backup: Path, data_dir: Path) -> None:
    data_dir.mkdir()
    shutil.copy2(backup / "gateway.sqlite3", data_dir / "gateway.sqlite3")
    shutil.copytree(backup / "blobs", data_dir / "blobs")
    shutil.copy2(backup / "gateway-key.json", data_dir / "gateway-key.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAFETT_")}
    env.update(STAFETT_DATA_DIR=str(data_dir), STAFETT_GATEWAY_KEY_PASSPHRASE=PASSPHRASE)
    done = subprocess.run(
        [str(GATEWAY_CLI), "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


async def open_and_ack(bo: StafettClient, message_id: str, dest: Path) -> bytes:
    opened = await bo.fetch(message_id, dest)
    data = await asyncio.to_thread(dest.read_bytes)
    await asyncio.to_thread(dest.unlink)
    await bo.ack(message_id, header_hash=opened.header_hash)
    return data


@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_restored_backup_serves_pending_messages_and_its_audit_verifies(
    tmp_path: Path,
) -> None:
    original = tmp_path / "original"
    original.mkdir()
    url = f"sqlite+aiosqlite:///{(original / 'gateway.sqlite3').resolve()}"
    gw = await start_gateway(original, url)
    bodies: dict[str, bytes] = {}
    try:
        async with client(gw, ANNA) as anna:
            consent_id = await record_consent(anna)
            for n in range(2):
                body = f"overlamning {n}\n".encode() * 5000
                sent = await anna.send(**message_args(consent_id, body=body))
                bodies[sent.message_id] = body
        handed, pending = sorted(bodies)
        async with client(gw, BO) as bo:
            assert await open_and_ack(bo, handed, tmp_path / "out") == bodies[handed]
        async with admin(gw) as auditor:
            kept = await auditor.audit_checkpoint()  # what the auditor keeps, off the host
        reply = await gw.client(BO).get(f"/v1/messages/{pending}/envelope")
        assert reply.status == 200
        envelope = reply.body
        back_up(original, tmp_path / "backup")  # while the gateway runs
    finally:
        await stop_gateway(gw)

    restored = tmp_path / "restored"
    restore(tmp_path / "backup", restored)
    gp = GatewayProcess(restored, tmp_path / "restored.log")
    await gp.start()
    try:
        async with sdk(gp, gw, BO, tmp_path) as bo:
            key = await bo.transport.request("GET", "/v1/gateway/key")
            assert key["verify_key"] == gw.identity.verify_key.b64()  # the same gateway
            listed = [m["message_id"] for m in (await bo.inbox())["messages"]]
            assert listed == [pending]
            with pytest.raises(MessageGone):
                await bo.fetch(handed, tmp_path / "gone")
            assert await open_and_ack(bo, pending, tmp_path / "out") == bodies[pending]
        export = tmp_path / "restored-audit.json"
        assert await export_audit(gp.url, gw, export) > 4
        assert "intact" in verify_offline(export, gw.identity.verify_key)
        auditor = StafettAdminClient(gp.url, admin_keystore(gw))
        async with auditor:
            await auditor.verify_audit(gw.identity.verify_key, known_checkpoints=[kept])
    finally:
        await gp.stop()
    assert files_holding(restored, envelope_markers([envelope])) == []

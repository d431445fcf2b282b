"""Two gateway instances on one PostgreSQL with the shared PostgreSQL blob store (issue 12
item 3).

Two ``stafett-gateway serve`` child processes share the database, the blob store
(``blob_store = postgresql``) and — through ``identity export`` / ``init --from`` — the
gateway key. The SDK's requests alternate between them and both run every job. After
sends, fetches, receipts, a recall, a withdrawal, an expiry, an escalation and webhook
deliveries: every message ended exactly once (one audit entry each, no duplicate
webhook), nothing was lost (every handover has its verified receipt), no content of an
ended message is left in the blob store, and the exported audit trail verifies against
the one gateway key, with every checkpoint either instance signed consistent with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web

from clients.keys_admin.audit import Export, verify_export
from clients.sdk import StafettClient
from gateway.identity import export_identity, import_identity
from tests.support.gateway import (
    PASSPHRASE,
    RunningGateway,
    make_settings,
    start_gateway,
    stop_gateway,
)
from tests.support.sdk import ANNA, BO, device_keystore, message_args, record_consent

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio]
GATEWAY = Path(sys.executable).with_name("stafett-gateway")
JOBS_FAST = {
    "blob_store": "postgresql",
    "webhook_allow_loopback_http": "1",
    "webhook_interval_s": "0.3",
    "expire_interval_s": "1",
    "escalation_interval_s": "1",
    "audit_checkpoint_interval_s": "1",
    "events_poll_interval_s": "0.2",
    "rate_limit_per_s": "100000",
    "rate_limit_burst": "100000",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Instance:
    """One ``stafett-gateway serve`` process of the shared gateway."""

    def __init__(self, data_dir: Path, db_url: str, log: Path) -> None:
        self.data_dir, self.db_url, self.log = data_dir, db_url, log
        self.port = _free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STAFETT_")}
        env.update(
            STAFETT_DATA_DIR=str(self.data_dir),
            STAFETT_PORT=str(self.port),
            STAFETT_DATABASE_URL=self.db_url,
            STAFETT_GATEWAY_KEY_PASSPHRASE=PASSPHRASE,
            STAFETT_INSECURE_FAST_KDF="1",
        )
        env.update({f"STAFETT_{k.upper()}": v for k, v in JOBS_FAST.items()})
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                str(GATEWAY), "serve", env=env, stdout=log, stderr=log
            )
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                assert self.proc.returncode is None, self.log.read_text()[-2000:]
                try:
                    async with http.get(f"{self.url}/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("the instance did not become ready")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


class Hooks:
    """A webhook receiver: every delivery, as received."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((request.headers["webhook-id"], json.loads(await request.read())))
        return web.Response(status=204)


@pytest_asyncio.fixture
async def pg_url(pg_cluster: Any) -> AsyncIterator[str]:
    name = f"mi_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_cluster.dsn("postgres"))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    yield pg_cluster.url(name)
    conn = await asyncpg.connect(pg_cluster.dsn("postgres"))
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def _sql(db: asyncpg.Connection, query: str, *args: Any) -> list[Any]:
    return list(await db.fetch(query, *args))


async def test_two_instances_one_gateway(pg_url: str, tmp_path: Path) -> None:
    # --- provisioning, in-process: migrate, key, directory, webhook (as an operator would)
    hooks = Hooks()
    receiver = web.Application()
    receiver.router.add_post("/hook", hooks.handle)
    runner = web.AppRunner(receiver)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hooks.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    setup: RunningGateway = await start_gateway(
        tmp_path / "a", pg_url, webhook_allow_loopback_http=True
    )
    try:
        async with StafettClient(str(setup.url), device_keystore(setup, BO)) as owner:
            await owner.transport.request("POST", "/v1/webhooks", json_body={"url": hooks.url})
    finally:
        await stop_gateway(setup)
    # The second instance gets the same gateway key (identity export / init --from).
    export_identity(setup.settings, tmp_path / "key.export")
    import_identity(make_settings(tmp_path / "b", pg_url), tmp_path / "key.export", {})
    a = Instance(tmp_path / "a", pg_url, tmp_path / "a.log")
    b = Instance(tmp_path / "b", pg_url, tmp_path / "b.log")
    db = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    clients: list[StafettClient] = []

    def sdk(instance: Instance, kid: str) -> StafettClient:
        made = StafettClient(instance.url, device_keystore(setup, kid), retry_backoff_s=0)
        clients.append(made)
        return made

    try:
        await asyncio.gather(a.start(), b.start())
        anna = [sdk(a, ANNA), sdk(b, ANNA)]
        bo = [sdk(b, BO), sdk(a, BO)]  # the recipient on the *other* instance
        consent = await record_consent(anna[0])

        # Sends alternate between the instances; bodies are larger than one chunk.
        sent: list[str] = []
        for i in range(6):
            body = os.urandom(300 * 1024) + bytes([i])
            answer = await anna[i % 2].send(**message_args(consent, body=body))
            sent.append(answer.message_id)
        to_withdraw = [
            (await anna[i % 2].send(**message_args(consent))).message_id for i in range(2)
        ]
        expiring = (await anna[1].send(**message_args(consent, expires_in_s=2))).message_id

        # Handover of four, each fetched on one instance and receipted on the other.
        for i, message_id in enumerate(sent[:4]):
            opened = await bo[i % 2].fetch(message_id, tmp_path / f"out-{i}")
            assert opened.path.exists()
            await bo[(i + 1) % 2].ack(message_id, header_hash=opened.header_hash)
        recalled = sent[4]
        await anna[1].recall(recalled)
        overdue = sent[5]
        await db.execute(
            "UPDATE messages SET due = $1 WHERE id = $2", int(time.time()) - 10, overdue
        )

        async def ended() -> bool:
            rows = await _sql(
                db,
                "SELECT state, escalated_at FROM messages WHERE id = ANY($1::text[])",
                [expiring, overdue],
            )
            states = {r["state"] for r in rows}
            return "expired" in states and all(
                r["escalated_at"] is not None for r in rows if r["state"] != "expired"
            )

        await _until(ended, "the expiry and the escalation jobs")
        # The withdrawal ends every message still pending under the consent.
        await bo[0].withdraw_consent(consent, "subject_withdrew")
        to_withdraw.append(overdue)
        for i, message_id in enumerate(sent[:4]):
            receipt = await anna[i % 2].receipt(message_id)
            assert receipt is not None
            assert (await anna[(i + 1) % 2].status(message_id))["state"] == "handed_over"
        for message_id in to_withdraw:
            assert (await anna[0].status(message_id))["state"] == "withdrawn"
        assert (await anna[0].status(recalled))["state"] == "recalled"

        # Webhooks: delivered by either instance, never twice.
        async def hooked() -> bool:
            seen = " ".join(json.dumps(p) for _, p in hooks.got)
            return all(message_id in seen for message_id in sent)

        await _until(hooked, "webhook deliveries for every message")
        await asyncio.sleep(1.5)  # time for a duplicate to show up, if one were coming
        ids = [hook_id for hook_id, _ in hooks.got]
        assert len(ids) == len(set(ids)), "a webhook was delivered twice"

        # Exactly once: one audit entry per decision, whichever instance took it.
        counts = {
            (r["event"], r["m"]): r["n"]
            for r in await _sql(
                db,
                "SELECT event, data_json::json->>'message_id' AS m, count(*) AS n "
                "FROM audit_entries GROUP BY 1, 2",
            )
        }
        everything = [*sent, *to_withdraw, expiring]
        for message_id in everything:
            assert counts[("message_accepted", message_id)] == 1
        for message_id in sent[:4]:
            assert counts[("message_handed_over", message_id)] == 1
        assert counts[("message_expired", expiring)] == 1
        assert counts[("message_recalled", recalled)] == 1
        assert counts[("message_escalated", overdue)] == 1
        for message_id in to_withdraw:
            assert counts[("message_withdrawn", message_id)] == 1

        # No content outlives its message: every message ended, no chunk is left.
        assert await _sql(db, "SELECT blob_key FROM messages WHERE blob_key IS NOT NULL") == []
        assert await _sql(db, "SELECT blob_key FROM blob_chunks") == []
        assert await _sql(db, "SELECT blob_key FROM blob_uploads") == []

        # One chain, signed with one key by both instances: the export verifies, and
        # every checkpoint either instance ever signed agrees with it (no fork).
        await asyncio.sleep(1.5)  # a checkpoint over the last entries
        entries = [
            {
                "seq": r["seq"],
                "prev_hash": r["prev_hash"],
                "created": r["created"],
                "event": r["event"],
                "data": json.loads(r["data_json"]),
                "hash": r["hash"],
            }
            for r in await _sql(db, "SELECT * FROM audit_entries ORDER BY seq")
        ]
        checkpoints = [
            {
                "size": r["size"],
                "head": r["head"],
                "created": r["created"],
                "signer": r["signer"],
                "sig": r["sig"],
            }
            for r in await _sql(db, "SELECT * FROM audit_checkpoints ORDER BY size")
        ]
        assert len(checkpoints) >= 2
        newest = checkpoints[-1]
        head = verify_export(
            Export(entries[: newest["size"]], [newest]), setup.identity.verify_key, checkpoints
        )
        assert head.size == newest["size"]
    finally:
        for made in clients:
            await made.close()
        await db.close()
        await asyncio.gather(a.stop(), b.stop())
        await runner.cleanup()
    for instance in (a, b):
        text = instance.log.read_text()
        assert "Traceback" not in text, text[-3000:]

"""Chaos: a real gateway SIGKILLed at seeded random moments under sends *and* receipts.

Two devices send and a third collects and acknowledges, concurrently, through the SDK,
while the test kills the ``stafett-gateway serve`` child process (``SIGKILL``: no
shutdown code runs) and restarts it on the same data and database. Afterwards:

- every send that answered 2xx was either handed over (its receipt answered 2xx) or is
  still listed and collectable, with the plaintext that was sent;
- nothing is listed or served after its receipt (``message_gone``), during the run and
  after the restarts;
- no byte sequence of a receipted envelope survives in any file of the data directory
  (blobs, temp files, the SQLite database and its WAL), and in the end none at all;
- the audit trail, exported through the admin SDK, verifies offline with
  ``stafett-keys audit verify``, and records each handover exactly once.

On SQLite and PostgreSQL (the kills then also cut the pool's connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from ops_support import export_audit, verify_offline

from clients.admin import StafettAdminClient
from clients.errors import GatewayUnavailable
from clients.sdk import StafettClient
from keys.protocol.problems import MessageGone, MessageIdConflict, ServiceUnavailable
from keys.protocol.refusals import InvalidTransition
from tests.support.gateway import RunningGateway, start_gateway, stop_gateway
from tests.support.process import GatewayProcess, sdk
from tests.support.scan import envelope_markers, files_holding
from tests.support.sdk import (
    ANNA,
    BERTIL,
    BO,
    admin_keystore,
    device_keystore,
    message_args,
    record_consent,
)

SEED = 12_0008
KILLS = 4
PER_SENDER = 6
BODY_BYTES = 40 * 1024
# Transient while the gateway is down or just back (an upload the restart resolves).
DOWN = (GatewayUnavailable, ServiceUnavailable, aiohttp.ClientError)


@dataclass
class Ledger:
    """What the devices were told: the truth the gateway's state is checked against."""

    sent: dict[str, str] = field(default_factory=dict)  # message id → sha256 of plaintext
    receipted: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)  # a receipt was posted, answer or not
    envelopes: dict[str, bytes] = field(default_factory=dict)
    senders_done: bool = False
    kills_done: bool = False  # the receiver keeps going until every kill has landed


@dataclass
class Chaos:
    gp: GatewayProcess
    gw: RunningGateway
    consent_id: str
    spool: Path
    scan_root: Path
    store_url: str


@pytest_asyncio.fixture
async def chaos(store_url: str, tmp_path: Path) -> AsyncIterator[Chaos]:
    """Set up in-process (key, migrations, directory, one consent), then served by a
    child process on the same data directory and database."""
    data_dir = tmp_path / "gw"
    data_dir.mkdir()
    if store_url.startswith("sqlite"):
        # In the data directory: the scan for envelope bytes covers the database too.
        store_url = f"sqlite+aiosqlite:///{(data_dir / 'gateway.sqlite3').resolve()}"
    gw = await start_gateway(data_dir, store_url)
    try:
        async with StafettClient(str(gw.url), device_keystore(gw, ANNA)) as anna:
            consent_id = await record_consent(anna)
    finally:
        await stop_gateway(gw)
    spool = tmp_path / "spool"
    spool.mkdir()
    gp = GatewayProcess(data_dir, tmp_path / "gateway.log")
    c = Chaos(gp, gw, consent_id, spool, data_dir, store_url)
    try:
        await start(c)
        yield c
    finally:
        await c.gp.stop()


async def start(c: Chaos) -> None:
    await c.gp.start(database_url=c.store_url)


async def send_load(c: Chaos, kid: str, rng: random.Random, ledger: Ledger) -> None:
    """PER_SENDER sends, each retried (same message id) until the gateway answered 2xx."""
    for _ in range(PER_SENDER):
        message_id, body = str(uuid.uuid4()), rng.randbytes(BODY_BYTES)
        while True:
            async with sdk(c.gp, c.gw, kid, c.spool) as client:
                try:
                    sent = await client.send(
                        **message_args(c.consent_id, body=body), message_id=message_id
                    )
                    assert sent.status in (200, 201)
                except DOWN:
                    await asyncio.sleep(0.2)
                    continue
                except MessageIdConflict:
                    pass  # an earlier try was accepted but its answer lost: accepted
            ledger.sent[message_id] = hashlib.sha256(body).hexdigest()
            break
        await asyncio.sleep(rng.uniform(0, 0.1))


async def hand_over(bo: StafettClient, c: Chaos, message_id: str, ledger: Ledger) -> None:
    """Download the raw envelope (kept for the scan), open it, check the plaintext, ack."""
    raw = io.BytesIO()
    await bo.transport.download(f"/v1/messages/{message_id}/envelope", raw)
    ledger.envelopes[message_id] = raw.getvalue()
    out = c.spool / f"{message_id}.out"
    opened = await bo.fetch(message_id, out, reopen=True)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == ledger.sent.get(message_id), (
        "opened content differs from what was sent"
    )
    out.unlink()
    ledger.acked.add(message_id)
    # InvalidTransition: our earlier receipt (another received_at) was stored before a
    # kill ate its answer. Either way the message must be gone now.
    with contextlib.suppress(InvalidTransition):
        await bo.ack(message_id, header_hash=opened.header_hash)
    await assert_gone(bo, message_id)
    ledger.receipted.add(message_id)


async def assert_gone(bo: StafettClient, message_id: str) -> None:
    with pytest.raises(MessageGone):
        await bo.transport.download(f"/v1/messages/{message_id}/envelope", io.BytesIO())


def taken_now(ledger: Ledger, message_id: str) -> bool:
    """The receiver hands over about half the messages during the chaos (by the first
    hex digit of the plaintext's hash); the rest stay pending across the last kill."""
    digest = ledger.sent.get(message_id)
    return digest is not None and int(digest[0], 16) < 8


async def receive_load(c: Chaos, rng: random.Random, ledger: Ledger) -> None:
    """Collect and acknowledge (half of) the messages while the kills go on; after each
    receipt, a receipted message picked at random must no longer be served."""
    while not (
        ledger.senders_done
        and ledger.kills_done
        and ledger.receipted >= {m for m in ledger.sent if taken_now(ledger, m)}
    ):
        async with sdk(c.gp, c.gw, BO, c.spool) as bo:
            bo.retries = 1
            try:
                listed = {m["message_id"] for m in (await bo.inbox())["messages"]}
                assert not listed & ledger.receipted, "listed after its receipt"
                for message_id in sorted(set(ledger.sent) - listed - ledger.receipted):
                    # Accepted, yet no longer listed: only our receipt (its answer lost
                    # to a kill) may have ended it.
                    assert message_id in ledger.acked, "an accepted message vanished"
                    await assert_gone(bo, message_id)
                    ledger.receipted.add(message_id)
                for message_id in sorted(m for m in listed if taken_now(ledger, m)):
                    await hand_over(bo, c, message_id, ledger)
                    await assert_gone(bo, rng.choice(sorted(ledger.receipted)))
            except DOWN:
                pass
        await asyncio.sleep(0.1)


async def kill_at_random(c: Chaos, rng: random.Random, ledger: Ledger) -> int:
    kills = 0
    while kills < KILLS:
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        await c.gp.kill()
        kills += 1
        await start(c)
    ledger.kills_done = True
    return kills


async def audited_handovers(c: Chaos) -> list[str]:
    admin = StafettAdminClient(c.gp.url, admin_keystore(c.gw))
    async with admin:
        entries = await admin.audit_entries()
    return [e["data"]["message_id"] for e in entries if e["event"] == "message_handed_over"]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_sigkills_under_sends_and_receipts_lose_nothing_and_keep_nothing(
    chaos: Chaos, tmp_path: Path
) -> None:
    c = chaos
    ledger = Ledger()
    killer = asyncio.create_task(kill_at_random(c, random.Random(SEED), ledger))
    receiver = asyncio.create_task(receive_load(c, random.Random(SEED + 1), ledger))
    senders = (ANNA, BERTIL)
    await asyncio.gather(
        *(send_load(c, kid, random.Random(SEED + 2 + i), ledger) for i, kid in enumerate(senders))
    )
    ledger.senders_done = True
    async with asyncio.timeout(30):
        await receiver
    assert await killer == KILLS
    assert len(ledger.sent) == 2 * PER_SENDER

    # One last kill, then: the receipted are gone, the rest listed and their bytes kept.
    await c.gp.kill()
    await start(c)
    pending = set(ledger.sent) - ledger.receipted
    assert pending, "the seed should leave some messages pending"
    receipted_markers = envelope_markers(ledger.envelopes[m] for m in ledger.receipted)
    assert files_holding(c.scan_root, receipted_markers) == []
    async with sdk(c.gp, c.gw, BO, c.spool) as bo:
        bo.retries = 0
        listed = {m["message_id"] for m in (await bo.inbox())["messages"]}
        assert listed == pending
        for message_id in sorted(ledger.receipted):
            await assert_gone(bo, message_id)
        for message_id in sorted(pending):  # collectable at once: a 503 fails here
            await hand_over(bo, c, message_id, ledger)
            await assert_gone(bo, message_id)
        assert (await bo.inbox())["messages"] == []

    handovers = await audited_handovers(c)
    assert sorted(handovers) == sorted(ledger.sent)  # each handover recorded exactly once
    export = tmp_path / "audit-export.json"
    assert await export_audit(c.gp.url, c.gw, export) > 4 * PER_SENDER
    assert "intact" in verify_offline(export, c.gw.identity.verify_key)

    await c.gp.stop()  # a clean stop folds the SQLite WAL into the database file
    assert len(ledger.envelopes) == len(ledger.sent)
    assert files_holding(c.scan_root, envelope_markers(ledger.envelopes.values())) == []
    assert [p for p in (c.scan_root / "blobs").rglob("*") if p.is_file()] == []

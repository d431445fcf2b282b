"""A gateway SIGKILLed during uploads loses no accepted message and keeps no envelope.

A real ``stafett-gateway serve`` runs as a child process on SQLite; the SDK sends
through it while the test kills it (``SIGKILL``: no shutdown code runs) and restarts it
on the same data directory. First the two windows around the commit, hit every time
with the test-mode switch ``STAFETT_TEST_CRASH_AT`` (``gateway.settings``), then kills
at seeded random moments. After the last restart every message whose send answered 2xx
is collected at once (a 503 fails the test), and after the receipts no byte sequence of
any envelope is left in any file of the data directory, the database included.
"""

from __future__ import annotations

import asyncio
import io
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from clients.errors import GatewayUnavailable
from clients.sdk import StafettClient
from keys.protocol.problems import MessageIdConflict
from tests.support.gateway import RunningGateway, start_gateway, stop_gateway
from tests.support.process import GatewayProcess, sdk
from tests.support.sdk import ANNA, BERTIL, BO, device_keystore, message_args, record_consent

SEED = 8_2024
RANDOM_KILLS = 12
MIN_KILLS = 3  # the load goes on until at least this many kills landed
PER_SENDER = 10
BODY_BYTES = 256 * 1024  # long enough that a kill often lands mid-upload


@pytest_asyncio.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[GatewayProcess, RunningGateway, str]]:
    """A gateway set up in-process (key, migrations, directory, one consent), then
    served by a child process on the same data directory and SQLite file."""
    data_dir = tmp_path / "gw"
    data_dir.mkdir()
    url = f"sqlite+aiosqlite:///{(data_dir / 'gateway.sqlite3').resolve()}"
    gw = await start_gateway(data_dir, url)
    try:
        async with StafettClient(str(gw.url), device_keystore(gw, ANNA)) as anna:
            consent_id = await record_consent(anna)
    finally:
        await stop_gateway(gw)
    gp = GatewayProcess(data_dir, tmp_path / "gateway.log")
    (tmp_path / "spool").mkdir()
    try:
        yield gp, gw, consent_id
    finally:
        await gp.stop()


def body(rng: random.Random) -> bytes:
    return rng.randbytes(BODY_BYTES)


async def send_through_crash(
    gp: GatewayProcess, gw: RunningGateway, consent_id: str, spool: Path, point: str, seed: int
) -> dict[str, Any]:
    """One send while the gateway kills itself at ``point``; restarted without the switch,
    the SDK's retry of the same envelope (same message id) must succeed."""
    await gp.kill()
    await gp.start(test_crash_at=point)
    async with sdk(gp, gw, ANNA, spool) as anna:
        sending = asyncio.create_task(
            anna.send(**message_args(consent_id, body=body(random.Random(seed))))
        )
        await gp.died()
        await gp.start()
        sent = await sending
    assert sent.attempts > 1
    return {"message_id": sent.message_id, "status": sent.status}


async def send_many(
    gp: GatewayProcess,
    gw: RunningGateway,
    kid: str,
    consent_id: str,
    spool: Path,
    rng: random.Random,
    accepted: dict[str, int],
    kills: list[int],
) -> int:
    """Send PER_SENDER messages, each until it is known to be accepted; go on (up to
    four times as many) until the killer has landed MIN_KILLS, so a fast machine cannot
    finish the load before the kills it is meant to survive."""
    sent_count = 0
    while sent_count < PER_SENDER or (kills[0] < MIN_KILLS and sent_count < 4 * PER_SENDER):
        sent_count += 1
        message_id = str(uuid.uuid4())
        data = body(rng)
        while True:
            # A fresh client per try: its pooled connections died with the gateway.
            async with sdk(gp, gw, kid, spool) as client:
                try:
                    sent = await client.send(
                        **message_args(consent_id, body=data), message_id=message_id
                    )
                except GatewayUnavailable:
                    await asyncio.sleep(0.3)  # down longer than the SDK's retries
                    continue
                except MessageIdConflict:
                    # Resealed bytes after an earlier try that was accepted but whose
                    # answer was lost: accepted all the same, and must be collectable.
                    accepted[message_id] = 0
                    break
            assert sent.status in (200, 201)
            accepted[message_id] = sent.status
            break
    return sent_count


async def kill_at_random(
    gp: GatewayProcess, rng: random.Random, done: asyncio.Event, kills: list[int]
) -> int:
    while kills[0] < RANDOM_KILLS and not done.is_set():
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        await gp.kill()
        kills[0] += 1
        await gp.start()
    return kills[0]


async def collect_all(
    gp: GatewayProcess, gw: RunningGateway, spool: Path, expected: set[str]
) -> list[bytes]:
    """Fetch, open and acknowledge every message in the inbox; returns the envelopes."""
    envelopes: list[bytes] = []
    async with sdk(gp, gw, BO, spool) as bo:
        bo.retries = 0
        inbox = await bo.inbox()
        listed = {m["message_id"] for m in inbox["messages"]}
        assert inbox["next"] is None
        assert expected <= listed
        for message_id in sorted(listed):
            raw = io.BytesIO()
            # Raises on any error status: a 503 here is an accepted message stranded.
            await bo.transport.download(f"/v1/messages/{message_id}/envelope", raw)
            envelopes.append(raw.getvalue())
            opened = await bo.fetch(message_id, spool / f"{message_id}.out")
            assert opened.content_length == BODY_BYTES
            await bo.ack(message_id)
    return envelopes


def files_holding(root: Path, markers: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.relative_to(root)}" for m in markers if m in data]
    return found


@pytest.mark.slow
@pytest.mark.asyncio
async def test_sigkill_during_uploads_strands_nothing_and_keeps_nothing(
    setup: tuple[GatewayProcess, RunningGateway, str], tmp_path: Path
) -> None:
    gp, gw, consent_id = setup
    spool = tmp_path / "spool"
    rng = random.Random(SEED)

    # The two windows, deterministically: committed but not renamed → the retry is a
    # replay (200) of what was accepted; on disk but not committed → the retry is 201.
    after = await send_through_crash(gp, gw, consent_id, spool, "after_commit", 1)
    assert after["status"] == 200
    before = await send_through_crash(gp, gw, consent_id, spool, "before_commit", 2)
    assert before["status"] == 201
    blobs = gp.data_dir / "blobs"
    assert not list(blobs.rglob(".*.part"))  # the killed try was destroyed at start-up

    # Kills at random moments while two devices send.
    accepted: dict[str, int] = {after["message_id"]: 200, before["message_id"]: 201}
    done = asyncio.Event()
    kills = [0]  # shared with the senders: they go on until enough kills landed
    killer = asyncio.create_task(kill_at_random(gp, rng, done, kills))
    senders = [
        send_many(gp, gw, kid, consent_id, spool, random.Random(SEED + i), accepted, kills)
        for i, kid in enumerate((ANNA, BERTIL))
    ]
    sent_counts = await asyncio.gather(*senders)
    done.set()
    assert await killer >= MIN_KILLS
    assert len(accepted) == sum(sent_counts) + 2 >= 2 * PER_SENDER + 2

    # One last kill, then straight to the recipient: every accepted message is there.
    await gp.kill()
    await gp.start()
    envelopes = await collect_all(gp, gw, spool, set(accepted))
    await gp.stop()  # a clean stop folds the SQLite WAL into the database file

    markers = [e[-48:] for e in envelopes] + [e[len(e) // 2 : len(e) // 2 + 48] for e in envelopes]
    assert files_holding(gp.data_dir, markers) == []
    assert [p for p in blobs.rglob("*") if p.is_file()] == []

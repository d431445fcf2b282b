"""The handover path's units of work (issue 13): nonce in the unit, the directory's
generation, group commit, events from memory, and no envelope bytes left on disk.

Through the HTTP interface on both stores, plus the SQLite runner on its own for group
commit (the part of it no request can isolate).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.appkeys import NOTIFIER, SESSIONMAKER
from gateway.caller import Caller, PendingNonce
from gateway.db import handover_store
from gateway.db.engine import make_sessionmaker, open_engine
from gateway.db.units import SqliteUnits, Tx
from gateway.migrations import migrate
from gateway.services.directory import DirectoryService
from gateway.services.request_unit import claim_nonce
from keys.crypto.ids import DeviceId, KeyId
from keys.protocol.problems import SignatureExpired
from tests.support.factories import ROOT_ADMIN
from tests.support.gateway import assert_problem, blob_files, stalled_request
from tests.support.messages import (
    BO,
    ENVELOPE,
    header_for,
    message_row,
    receipt_for,
    record_consent,
    seal_envelope,
    send_new,
)
from tests.support.scan import envelope_markers, files_holding

NONCE = "unit-of-work-nonce-0123456789"


@pytest.mark.asyncio
async def test_a_replayed_handover_request_is_refused_and_changes_nothing(gateway) -> None:
    consent = await record_consent(gateway)
    header, _ = await send_new(gateway, consent["consent_id"])
    path = f"/v1/messages/{header.message_id}"
    bo = gateway.client(BO)
    created = int(time.time())
    # The fetch stores its nonce in the unit that marks the message delivered.
    assert (await bo.get(f"{path}/envelope", created=created, nonce=NONCE)).status == 200
    replay = await bo.get(f"{path}/envelope", created=created, nonce=NONCE)
    assert_problem(replay, 401, "replayed")
    # A receipt replayed under a used nonce is refused before it is looked at.
    receipt = receipt_for(gateway, header)
    replayed = await bo.post(f"{path}/receipt", receipt, created=created, nonce=NONCE)
    assert_problem(replayed, 401, "replayed")
    assert (await message_row(gateway, header.message_id)).state == "delivered"
    assert (await bo.post(f"{path}/receipt", receipt)).status == 200
    assert (await message_row(gateway, header.message_id)).state == "handed_over"


@pytest.mark.asyncio
async def test_a_refused_send_stores_its_nonce_and_a_retry_answers_without_a_unit(
    gateway,
) -> None:
    consent = await record_consent(gateway)
    header = header_for(gateway, consent_id=str(uuid.uuid4()))  # no such consent
    envelope = seal_envelope(gateway, header)
    anna = gateway.client(str(header.sender))
    path = f"/v1/messages/{header.message_id}"
    created = int(time.time())
    refused = await anna.put(path, envelope, content_type=ENVELOPE, created=created, nonce=NONCE)
    assert refused.status in (403, 404), refused.body  # refused by the consent gate
    again = await anna.put(path, envelope, content_type=ENVELOPE, created=created, nonce=NONCE)
    assert_problem(again, 401, "replayed")
    # An accepted send retried with a fresh nonce is answered from the row (no unit of
    # work runs): its nonce is stored all the same, so that retry cannot be replayed.
    accepted_header, accepted = await send_new(gateway, consent["consent_id"])
    retry_path = f"/v1/messages/{accepted_header.message_id}"
    first = await anna.put(retry_path, accepted, content_type=ENVELOPE, nonce=NONCE + "-2")
    assert first.status == 200
    second = await anna.put(retry_path, accepted, content_type=ENVELOPE, nonce=NONCE + "-2")
    assert_problem(second, 401, "replayed")


@pytest.mark.asyncio
async def test_a_revocation_stored_elsewhere_is_seen_by_the_next_unit(gateway) -> None:
    """The copy of the directory in memory is behind (another process revoked the
    recipient's device): the fetch's unit notices the generation and refuses."""
    consent = await record_consent(gateway)
    header, _ = await send_new(gateway, consent["consent_id"])
    stale = gateway.app[SESSIONMAKER]
    # Another process appends: a second engine on the same database, not this app.
    engine = open_engine(gateway.settings.db_url)
    try:
        other = DirectoryService(gateway.identity.pinned_admins)
        await other.catch_up(make_sessionmaker(engine))
        entry = gateway.builder.entry("revoke_device", {"device": "sav/bo", "reason": "lost"})
        await other.append(make_sessionmaker(engine), [entry.to_json()], caller=ROOT_ADMIN, now=0)
    finally:
        await engine.dispose()
    assert stale is gateway.app[SESSIONMAKER]
    reply = await gateway.client(BO).get(f"/v1/messages/{header.message_id}/envelope")
    assert_problem(reply, 403, "device_revoked")
    assert (await message_row(gateway, header.message_id)).state == "accepted"


@pytest.mark.asyncio
async def test_a_device_revoked_while_its_request_arrives_is_refused(gateway) -> None:
    """Authenticated before a revocation this instance stores, decided after it (the
    request's body trickles in meanwhile): the unit checks the key against the
    directory it decides with, so the envelope is not handed out (found in review)."""
    consent = await record_consent(gateway)
    header, _ = await send_new(gateway, consent["consent_id"])
    resume = asyncio.Event()
    path = f"/v1/messages/{header.message_id}/envelope"
    fetch = stalled_request(
        gateway, BO, "GET", path, b"x" * 10, resume, content_type="application/octet-stream"
    )
    task = asyncio.create_task(fetch)
    await asyncio.sleep(0.5)  # authenticated; the gateway waits for the rest of the body
    revoke = gateway.builder.entry("revoke_device", {"device": "sav/bo", "reason": "lost"})
    reply = await gateway.admin.post("/v1/directory/entries", {"entries": [revoke.to_json()]})
    assert reply.status == 201, reply.body
    resume.set()
    reply = await task
    status, answer = reply.status, reply.body
    assert status == 403, answer[:200]
    assert b"device_revoked" in answer
    assert (await message_row(gateway, header.message_id)).state == "accepted"


@pytest.mark.asyncio
async def test_committed_events_reach_the_notifier_from_memory_on_sqlite(gateway) -> None:
    """On SQLite (one writer, commit order known) a unit's events are handed to the
    push notifier with their data, in seq order, and the device's memory stays
    complete; on PostgreSQL (concurrent commits) they only wake its sockets, which read
    the database."""
    consent = await record_consent(gateway)
    notifier = gateway.app[NOTIFIER]
    stale_before = notifier.stale_generation("sav/bo")
    first, _ = await send_new(gateway, consent["consent_id"])
    second, _ = await send_new(gateway, consent["consent_id"])
    remembered = notifier.recent("sav/bo", 0) or []
    if not gateway.settings.db_url.startswith("sqlite"):
        assert remembered == []
        assert notifier.stale_generation("sav/bo") > stale_before
        return
    assert notifier.stale_generation("sav/bo") == stale_before  # memory is complete
    sent = [(e.kind, e.message_id) for e in remembered]
    assert sent == [("inbox.new", first.message_id), ("inbox.new", second.message_id)]
    seqs = [e.seq for e in remembered]
    assert seqs == sorted(seqs)
    assert notifier.was_published(seqs[0])  # the cross-instance poll skips them


@pytest.mark.asyncio
async def test_handed_over_envelope_bytes_leave_no_file_once_idle(gateway, tmp_path) -> None:
    """Inline envelopes (SQLite): after the receipt and an idle moment, no file under
    the data directory — database, WAL, blobs — holds any of the envelope's bytes."""
    if not gateway.settings.db_url.startswith("sqlite"):
        pytest.skip("inline envelopes are the SQLite default")
    consent = await record_consent(gateway)
    header, envelope = await send_new(gateway, consent["consent_id"])
    assert len(blob_files(gateway)) == 1  # kept inline, in the database
    path = f"/v1/messages/{header.message_id}"
    bo = gateway.client(BO)
    assert (await bo.get(f"{path}/envelope")).status == 200
    assert (await bo.post(f"{path}/receipt", receipt_for(gateway, header))).status == 200
    assert blob_files(gateway) == []
    markers = envelope_markers([envelope])
    for _ in range(40):  # the scrub runs after 0.5 s of quiet
        if not files_holding(gateway.settings.data_dir, markers):
            break
        await asyncio.sleep(0.1)
    assert files_holding(gateway.settings.data_dir, markers) == []


@pytest.mark.asyncio
async def test_group_commit_isolates_a_failing_unit(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'units.sqlite3'}"
    await migrate(url)
    engine = open_engine(url)
    units = SqliteUnits(engine)
    try:

        def nonce(n: int) -> Callable[[Tx], bool]:
            def work(tx: Tx) -> bool:
                if n == 3:
                    handover_store.claim_nonce(tx.conn, "sav/bo/1", f"n{n}", 1)
                    raise ValueError("this unit fails after writing")
                return handover_store.claim_nonce(tx.conn, "sav/bo/1", f"n{n}", 1)

            return work

        results = await asyncio.gather(
            *(units.write(nonce(n)) for n in range(6)),
            return_exceptions=True,
        )
        assert [isinstance(r, ValueError) for r in results] == [False] * 3 + [True] + [False] * 2
        assert sum(r is True for r in results) == 5
        stored = await units.read(
            lambda tx: [
                n for (n,) in tx.conn.execute(text("SELECT nonce FROM nonces ORDER BY nonce"))
            ]
        )
        assert stored == ["n0", "n1", "n2", "n4", "n5"]  # the failed unit left nothing
        # The same nonce again: a replay, whatever unit it is in.
        again = await units.write(
            lambda tx: handover_store.claim_nonce(tx.conn, "sav/bo/1", "n0", 1)
        )
        assert again is False
        # A request whose signature is older than what the purge keeps is not decided:
        # an earlier use of its nonce may be forgotten by now (found in review).
        late = Caller(
            kid=KeyId.parse(BO),
            unit="sav",
            device=DeviceId.parse("sav/bo"),
            is_admin=False,
            nonce=PendingNonce(BO, "late-nonce-0123456789", 1, decide_by=int(time.time()) - 1),
        )
        with pytest.raises(SignatureExpired):
            await units.write(lambda tx: claim_nonce(tx, late))
        assert late.nonce is not None
        assert late.nonce.stored is False
    finally:
        units.close()
        await engine.dispose()

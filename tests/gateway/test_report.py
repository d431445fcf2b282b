"""Follow-up figures on both stores: the SQL feeding ``gateway.report``, months in
Stockholm time, small cells suppressed, no identifiers in CSV or JSON, the refusal
counter in the send path, the CLI (CSV, JSON, PNG) and the admin endpoint."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from gateway import cli
from gateway.appkeys import SESSIONMAKER
from gateway.db import message_store, report_store
from gateway.db.engine import SessionMaker, make_sessionmaker, open_engine
from gateway.db.models import AuditEntryRow, MessageRow, SendRefusalCount
from gateway.migrations import migrate
from gateway.services.followup import follow_up_report, period_of
from keys.crypto.keypairs import DeviceKeyPair, KeyId
from keys.domain.report_period import month_of
from tests.support.gateway import assert_problem
from tests.support.messages import BO, header_for, now, record_consent, seal_envelope, send

STOCKHOLM = ZoneInfo("Europe/Stockholm")
H = 3600
SUBJECT = "ab" * 32
HEX64 = re.compile(r"[0-9a-f]{64}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KID = re.compile(r"[a-z][a-z0-9-]*/[a-z][a-z0-9-]*")  # unit/name(/version): an officer


def local(month: int, day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(2026, month, day, hour, minute, tzinfo=STOCKHOLM).timestamp())


def _row(
    sender: str, recipient: str, category: str, purpose: str, accepted: int, state: str, **kw: Any
) -> MessageRow:
    return MessageRow(
        id=str(uuid.uuid4()),
        sender_kid=f"{sender}/anna/1",
        sender_unit=sender,
        recipient_unit=recipient,
        consent_id=str(uuid.uuid4()),
        consent_version=1,
        subject_ref=SUBJECT,
        category=category,
        purpose=purpose,
        header_hash="cd" * 32,
        envelope_hash="ef" * 32,
        size=1000,
        created=accepted,
        expires=accepted + 14 * 86400,
        due=kw.get("due"),
        state=state,
        state_changed_at=accepted,
        accepted_at=accepted,
        delivered_at=None,
        handed_over_at=kw.get("handed_over_at"),
        blob_key=None,
        escalated_at=kw.get("escalated_at"),
    )


async def seed(sessionmaker: SessionMaker) -> list[MessageRow]:
    """March 2026: 12 transfers handed over after 1..12 h (2 escalated), 3 after-hours
    messages expired (a small cell), a transfer at 23:30 local on 31 March and one at
    00:30 local on 1 April (22:30 UTC on 31 March: April here, March in UTC);
    refusals: 6 consent_expired, 2 consent_withdrawn."""
    rows: list[MessageRow] = []
    for i in range(12):
        t = local(3, 10, 9, i)
        rows.append(
            _row(
                "so-nordost",
                "sav",
                "case_transfer",
                "transfer_to_sav",
                t,
                "handed_over",
                handed_over_at=t + (i + 1) * H,
                escalated_at=t + H if i >= 10 else None,
            )
        )
    for i in range(3):
        rows.append(
            _row(
                "socialjour",
                "so-nordost",
                "after_hours_matter",
                "after_hours_handover",
                local(3, 13, 22, i),
                "expired",
            )
        )
    rows.append(
        _row(
            "sav",
            "so-nordost",
            "case_transfer",
            "transfer_to_district",
            local(3, 31, 23, 30),
            "accepted",
        )
    )
    rows.append(
        _row(
            "sav",
            "so-nordost",
            "case_transfer",
            "transfer_to_district",
            local(4, 1, 0, 30),
            "delivered",
        )
    )
    async with sessionmaker.begin() as session:
        for row in rows:
            await message_store.insert(session, row, [])
        for code, n in (("consent_expired", 6), ("consent_withdrawn", 2)):
            for _ in range(n):
                await report_store.count_refusal(
                    session,
                    month="2026-03",
                    sender_unit="so-nordost",
                    recipient_unit="sav",
                    category="case_transfer",
                    purpose="transfer_to_sav",
                    code=code,
                )
    return rows


def assert_no_identifiers(text: str, rows: list[MessageRow]) -> None:
    assert not HEX64.search(text)
    assert not UUID.search(text)
    assert not KID.search(text)
    for row in rows:
        assert row.id not in text
        assert row.consent_id not in text
        assert row.sender_kid not in text


@pytest.mark.asyncio
async def test_monthly_report_suppresses_small_cells_and_has_no_identifiers(
    db: SessionMaker,
) -> None:
    rows = await seed(db)
    report = await follow_up_report(db, period_of("2026-03", None), fmt="json", who="t", now=1)
    doc = json.loads(report.text)
    by_key = {
        (r["month"], r["sender_unit"], r["recipient_unit"], r["purpose"]): r for r in doc["rows"]
    }
    transfer = by_key[("2026-03", "so-nordost", "sav", "transfer_to_sav")]
    assert transfer["sent"] == 12
    assert transfer["handed_over"] == 12
    assert transfer["median_hours"] == 6.0  # nearest rank of 1..12 h
    assert transfer["p90_hours"] == 11.0
    assert transfer["escalated"] is None  # 2: a small cell
    assert transfer["refused_consent_expired"] == 6
    assert transfer["refused_consent_withdrawn"] is None  # 2
    # 8 − 6 would give the hidden 2 back: the total is hidden too.
    assert transfer["refused"] is None
    assert transfer["suppressed"]["refused"] == "complementary"
    after_hours = by_key[("2026-03", "socialjour", "so-nordost", "after_hours_handover")]
    assert after_hours["sent"] is None  # 3 expired: suppressed, zeros too
    assert after_hours["expired"] is None
    assert after_hours["suppressed"]["sent"] == "small_cell"
    # 23:30 on 31 March in Gothenburg is March; 00:30 on 1 April is not.
    assert ("2026-03", "sav", "so-nordost", "transfer_to_district") in by_key
    assert all(r["month"] == "2026-03" for r in doc["rows"])
    assert_no_identifiers(report.text, rows)

    report = await follow_up_report(db, period_of("2026-03", None), fmt="csv", who="t", now=1)
    table = list(csv.DictReader(io.StringIO(report.text)))
    cells = {(r["sender_unit"], r["purpose"]): r for r in table}
    assert cells[("socialjour", "after_hours_handover")]["expired"] == "<5"
    assert cells[("so-nordost", "transfer_to_sav")]["sent"] == "12"
    assert_no_identifiers(report.text, rows)

    year = await follow_up_report(db, period_of(None, "2026"), fmt="json", who="t", now=1)
    months = {r["month"] for r in json.loads(year.text)["rows"]}
    assert months == {"2026-03", "2026-04"}


@pytest.mark.asyncio
async def test_a_refused_send_is_counted_de_identified(gateway) -> None:
    consent = await record_consent(gateway, purposes=["transfer_to_sav"])
    t = now()
    for _ in range(2):
        header = header_for(gateway, consent_id=consent["consent_id"], purpose="advice")
        reply = await send(
            gateway, str(header.sender), header.message_id, seal_envelope(gateway, header)
        )
        assert_problem(reply, 403, "consent_purpose_not_covered")
    # A recipient unit the directory does not know is counted as "unknown".
    stranger = DeviceKeyPair.generate(KeyId.parse("so-okand/x/1"))
    header = header_for(gateway, consent_id=consent["consent_id"], recipients=("so-okand/x/1",))
    envelope = seal_envelope(gateway, header, recipient_keys=[stranger.public()])
    reply = await send(gateway, str(header.sender), header.message_id, envelope)
    assert_problem(reply, 422, "recipient_unit_unknown")
    async with gateway.app[SESSIONMAKER]() as session:
        counters = list(await session.scalars(select(SendRefusalCount)))
    assert {
        (c.month, c.sender_unit, c.recipient_unit, c.category, c.purpose, c.code, c.count)
        for c in counters
    } == {
        (
            month_of(t),
            "so-nordost",
            "sav",
            "case_transfer",
            "advice",
            "consent_purpose_not_covered",
            2,
        ),
        (
            month_of(t),
            "so-nordost",
            "unknown",
            "case_transfer",
            "transfer_to_sav",
            "recipient_unit_unknown",
            1,
        ),
    }


@pytest.mark.asyncio
async def test_admin_report_endpoint_is_admin_only(gateway) -> None:
    reply = await gateway.admin.get("/v1/admin/report?month=2026-03&format=csv")
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/csv")
    assert reply.body.decode().startswith("month,sender_unit,recipient_unit")
    assert_problem(
        await gateway.client(BO).get("/v1/admin/report?month=2026-03"), 403, "admin_required"
    )
    assert_problem(await gateway.admin.get("/v1/admin/report?month=2026-13"), 400, "field_invalid")
    async with gateway.app[SESSIONMAKER]() as session:
        exported = list(
            await session.scalars(
                select(AuditEntryRow.data_json).where(AuditEntryRow.event == "report_exported")
            )
        )
    assert len(exported) == 1
    assert '"by":"admin/root/1"' in exported[0]


def test_cli_report_writes_csv_json_and_png(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    async def prepare() -> list[MessageRow]:
        await migrate(store_url)
        engine = open_engine(store_url)
        try:
            return await seed(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    rows = asyncio.run(prepare())
    monkeypatch.setenv("STAFETT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STAFETT_DATABASE_URL", store_url)
    png = tmp_path / "chart.png"
    assert cli.main(["report", "--month", "2026-03", "--format", "csv", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("month,sender_unit,recipient_unit")
    assert "<5" in out
    assert_no_identifiers(out, rows)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    target = tmp_path / "2026.json"
    year_png = tmp_path / "2026.png"
    assert (
        cli.main(
            [
                "report",
                "--year",
                "2026",
                "--format",
                "json",
                "--out",
                str(target),
                "--png",
                str(year_png),
            ]
        )
        == 0
    )
    doc = json.loads(target.read_text("utf-8"))
    assert {r["month"] for r in doc["rows"]} == {"2026-03", "2026-04"}
    assert_no_identifiers(target.read_text("utf-8"), rows)
    assert year_png.stat().st_size > 1000
    assert cli.main(["report", "--month", "2026-3"]) == 2  # not YYYY-MM

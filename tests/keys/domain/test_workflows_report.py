"""Follow-up figures: counts, nearest-rank percentiles, small-cell suppression, no ids."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.report import (
    OUTCOMES,
    ReportEvent,
    ReportRow,
    aggregate,
    count_columns,
    nearest_rank,
    render_png,
    to_csv,
    to_json,
)

H = 3600
UUID_TEXT = "0b5e1f2a-9c3d-4e5f-8a7b-6c5d4e3f2a1b"
TRANSFER = ("2026-03", "sav", "so-nordost", "case_transfer", "transfer_to_district")
AFTER_HOURS = ("2026-03", "socialjour", "so-hisingen", "after_hours_matter", "after_hours_handover")
LAS = ("2026-04", "sav", "las-storgoteborg-city", "threat_assessment", "initial_threat_assessment")
ADVICE = ("2026-04", "so-nordost", "sav", "advice_request", "advice")

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KID = re.compile(r"[a-z][a-z0-9-]*/[a-z][a-z0-9-]*(/[0-9]+)?")  # unit/device(/version)


def events() -> list[ReportEvent | tuple[object, ...]]:
    out: list[ReportEvent | tuple[object, ...]] = []
    # 12 handed over after 1..12 hours (3 of them escalated first), 2 expired.
    for h in range(1, 13):
        out.append(ReportEvent(*TRANSFER, "handed_over", None, h * H, escalated=h > 9))
    out += [ReportEvent(*TRANSFER, "expired") for _ in range(2)]
    # A tiny group: 3 after-hours handovers, as plain tuples (the SQL's shape).
    out += [(*AFTER_HOURS, "handed_over", None, 50 * H, False) for _ in range(3)]
    # Refusals: 6 for an expired consent, 1 for a withdrawn one.
    out += [ReportEvent(*LAS, "refused", "consent_expired") for _ in range(6)]
    out += [ReportEvent(*LAS, "refused", "consent_withdrawn")]
    # 7 handovers: the median may be shown, the 90th percentile not.
    out += [ReportEvent(*ADVICE, "handed_over", None, h * H) for h in range(1, 8)]
    return out


def rows_by_key() -> dict[tuple[str, ...], ReportRow]:
    return {row.key: row for row in aggregate(events())}


def test_counts_and_percentiles_on_known_data() -> None:
    row = rows_by_key()[TRANSFER]
    assert row.values["handed_over"] == 12
    assert row.values["median_hours"] == 6.0  # rank ceil(0.5 * 12) = 6
    assert row.values["p90_hours"] == 11.0  # rank ceil(0.9 * 12) = 11
    assert row.values["pending"] == 0


def test_small_cells_are_suppressed_and_totals_hidden_with_them() -> None:
    row = rows_by_key()[TRANSFER]
    assert row.values["expired"] is None
    assert row.suppressed["expired"] == "small_cell"
    assert row.values["escalated"] is None  # 3
    # sent = 14 would give expired = 14 - 12 - 0: hidden as its complement.
    assert row.values["sent"] is None
    assert row.suppressed["sent"] == "complementary"


def test_a_tiny_group_hides_its_zeros_too() -> None:
    row = rows_by_key()[AFTER_HOURS]
    for name in ("sent", *OUTCOMES, "escalated", "median_hours", "p90_hours"):
        assert row.values[name] is None, name
    assert row.values["refused"] == 0  # no refusals at all: "nobody" is shown


def test_refusals_by_code() -> None:
    row = rows_by_key()[LAS]
    assert row.values["refused_consent_expired"] == 6
    assert row.values["refused_consent_withdrawn"] is None
    assert row.values["refused"] is None
    assert row.suppressed["refused"] == "complementary"
    assert row.values["sent"] == 0


def test_p90_needs_ten_handovers() -> None:
    row = rows_by_key()[ADVICE]
    assert row.values["sent"] == 7
    assert row.values["handed_over"] == 7
    assert row.values["median_hours"] == 4.0
    assert row.values["p90_hours"] is None
    assert row.suppressed["p90_hours"] == "too_few"


def test_unknown_refusal_code_and_vocabulary_fall_back_safely() -> None:
    rows = aggregate(
        [ReportEvent(*LAS[:3], "free text about the case", "advice", "refused", "ttl_invalid")] * 5
    )
    assert rows[0].key[3] == "unknown"
    assert rows[0].values["refused_other"] == 5


def test_suppressed_cells_cannot_be_recovered_from_totals() -> None:
    for row in aggregate(events()):
        for total, parts in (
            ("sent", OUTCOMES),
            ("refused", [c for c in row.values if c.startswith("refused_")]),
        ):
            if any(p in row.suppressed for p in parts):
                assert total in row.suppressed, (row.key, total)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["2026-01", "2026-02"]),
            st.sampled_from(["sav", "so-nordost"]),
            st.sampled_from([*OUTCOMES, "refused"]),
            st.sampled_from(["consent_expired", "consent_unknown", "ttl_invalid"]),
            st.booleans(),
        ),
        max_size=60,
    )
)
def test_property_no_visible_cell_reveals_a_suppressed_one(
    raw: list[tuple[str, str, str, str, bool]],
) -> None:
    evs = []
    for month, recipient, outcome, code, escalated in raw:
        refused = outcome == "refused"
        evs.append(
            ReportEvent(
                month,
                "socialjour",
                recipient,
                "after_hours_matter",
                "after_hours_handover",
                outcome,
                code if refused else None,
                60 if outcome == "handed_over" else None,
                escalated and not refused,
            )
        )
    for row in aggregate(evs):
        for name, value in row.values.items():
            if isinstance(value, int) and name not in ("median_hours", "p90_hours"):
                assert value == 0 or value >= 5
        for total, parts in (("sent", OUTCOMES), ("refused", ("refused_consent_expired",))):
            if any(p in row.suppressed for p in parts):
                assert total in row.suppressed


def test_nearest_rank() -> None:
    assert nearest_rank(list(range(1, 11)), 50) == 5
    assert nearest_rank(list(range(1, 11)), 90) == 9  # 0.9 * 10 computed exactly
    assert nearest_rank(list(range(20, 0, -1)), 90) == 18
    assert nearest_rank([7], 90) == 7
    assert nearest_rank([1, 2, 3, 4], 100) == 4
    with pytest.raises(ValueError, match="nearest_rank"):
        nearest_rank([], 50)


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=50), st.integers(1, 100))
def test_nearest_rank_is_the_smallest_value_covering_p_percent(values: list[int], p: int) -> None:
    v = nearest_rank(values, p)
    assert v in values
    assert 100 * sum(x <= v for x in values) >= p * len(values)
    assert all(100 * sum(x <= w for x in values) < p * len(values) for w in values if w < v)


@pytest.mark.parametrize(
    "bad",
    [
        ReportEvent("2026-03", "sav/bo/1", "so-nordost", "case_transfer", "advice", "pending"),
        ReportEvent("2026-03", "sav", "so-nordost/anna", "case_transfer", "advice", "pending"),
        ReportEvent("2026-03", "a" * 64, "sav", "case_transfer", "advice", "pending"),
        ReportEvent("2026-03", "sav", UUID_TEXT, "case_transfer", "advice", "pending"),
        ReportEvent("2026-13", "sav", "so-nordost", "case_transfer", "advice", "pending"),
        ReportEvent("2026-03", "sav", "so-nordost", "free text", "advice", "pending"),
        ReportEvent("2026-03", "sav", "so-nordost", "case_transfer", "advice", "lost"),
        ReportEvent("2026-03", "sav", "so-nordost", "case_transfer", "advice", "refused", "a" * 64),
        ReportEvent("2026-03", "sav", "so-nordost", "case_transfer", "advice", "expired", None, 5),
        ReportEvent("2026-03", "sav", "so-nordost", "case_transfer", "advice", "pending", "x"),
    ],
)
def test_identifiers_and_malformed_rows_are_refused(bad: ReportEvent) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        aggregate([bad])


def test_csv_export() -> None:
    text = to_csv(aggregate(events()))
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0])[:5] == ["month", "sender_unit", "recipient_unit", "category", "purpose"]
    assert set(count_columns()) <= set(table[0])
    transfer = next(
        r for r in table if r["sender_unit"] == "sav" and r["category"] == "case_transfer"
    )
    assert transfer["expired"] == "<5"
    assert transfer["sent"] == "x"
    assert transfer["handed_over"] == "12"
    assert transfer["median_hours"] == "6.0"
    advice = next(r for r in table if r["purpose"] == "advice")
    assert advice["p90_hours"] == "<10"
    _assert_no_identifiers(text)
    assert not any(cell[:1] in "=+-@" for row in table for cell in row.values() if cell)


def test_json_export() -> None:
    text = to_json(aggregate(events()))
    doc = json.loads(text)
    transfer = next(r for r in doc["rows"] if r["category"] == "case_transfer")
    assert transfer["expired"] is None
    assert transfer["suppressed"] == {
        "escalated": "small_cell",
        "expired": "small_cell",
        "sent": "complementary",
    }
    assert transfer["p90_hours"] == 11.0
    _assert_no_identifiers(text)
    values = [v for row in doc["rows"] for v in row.values() if isinstance(v, str)]
    assert values
    assert not any("/" in v for v in values)


def _assert_no_identifiers(text: str) -> None:
    assert not HEX64.search(text)
    assert not UUID.search(text)
    assert not KID.search(text), KID.search(text)


def test_empty_report() -> None:
    assert to_csv([]).startswith("month,sender_unit,recipient_unit,category,purpose,sent,")
    assert json.loads(to_json([]))["rows"] == []


def test_png_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from gateway.report_chart import monthly_totals

    rows = aggregate(events())
    months, series = monthly_totals(rows, 2026)
    assert len(months) == 12
    # March: 12 visible handovers (the tiny group's 3 are suppressed: not drawn).
    assert series["handed_over"][2] == 12
    assert series["expired"][2] == 0
    path = tmp_path / "stafett-2026.png"
    render_png(rows, path, year=2026)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5_000
    assert [p.name for p in tmp_path.iterdir()] == ["stafett-2026.png"]  # no temp left

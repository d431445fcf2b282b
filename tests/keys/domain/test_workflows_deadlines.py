"""Deadline policy: the shipped default, the checks on a policy file, and a property."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.domain.deadlines import DeadlinePolicyError, load_deadline_policy, parse_deadline_policy
from keys.protocol.vocabulary import load_vocabulary
from tests.support.paths import REPO

TZ = ZoneInfo("Europe/Stockholm")
POLICY = load_deadline_policy()
VOCAB = load_vocabulary()


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=TZ).timestamp())


def local_of(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, TZ)


def test_socialjour_friday_evening_is_due_monday_noon() -> None:
    due = POLICY.due("socialjour", "district", "after_hours_handover", ts(2026, 1, 9, 18, 30))
    assert due == ts(2026, 1, 12, 12, 0)


def test_socialjour_before_midsummer_and_christmas() -> None:
    flow = ("socialjour", "district", "after_hours_handover")
    assert POLICY.due(*flow, ts(2026, 6, 18, 21, 0)) == ts(2026, 6, 22, 12, 0)
    assert POLICY.due(*flow, ts(2026, 12, 23, 21, 0)) == ts(2026, 12, 28, 12, 0)


def test_socialjour_in_dst_weeks_keeps_noon_local() -> None:
    flow = ("socialjour", "district", "after_hours_handover")
    spring = POLICY.due(*flow, ts(2026, 3, 28, 23, 0))  # Saturday before the change
    assert spring == int(datetime(2026, 3, 30, 10, 0, tzinfo=UTC).timestamp())
    autumn = POLICY.due(*flow, ts(2026, 10, 24, 23, 0))
    assert autumn == int(datetime(2026, 10, 26, 11, 0, tzinfo=UTC).timestamp())


def test_las_threat_assessment_is_due_in_14_calendar_days() -> None:
    accepted = ts(2026, 2, 3, 9, 15)  # a Tuesday; +14 days is a Tuesday
    due = POLICY.due("sav", "las", "initial_threat_assessment", accepted)
    assert due == ts(2026, 2, 17, 9, 15)
    assert due == accepted + 14 * 86_400  # no DST change in between


def test_las_threat_assessment_landing_on_a_holiday_moves_to_the_next_weekday() -> None:
    # 2026-03-20 + 14 days = Good Friday; next weekday after Easter Monday; across DST.
    due = POLICY.due("sav", "las", "initial_threat_assessment", ts(2026, 3, 20, 10))
    assert due == ts(2026, 4, 7, 10)


def test_acute_placement_followup_moves_earlier_not_later() -> None:
    due = POLICY.due("socialjour", "district", "acute_placement_followup", ts(2026, 3, 20, 10))
    assert due == ts(2026, 4, 2, 10)


def test_report_of_concern_by_end_of_next_business_day() -> None:
    due = POLICY.due("sav", "district", "forward_report_of_concern", ts(2026, 1, 12, 10))
    assert due == ts(2026, 1, 13, 17)


def test_flow_without_rule_has_no_due() -> None:
    assert POLICY.due("district", "sav", "advice", ts(2026, 1, 12, 10)) is None
    assert POLICY.due("las", "socialjour", "after_hours_handover", ts(2026, 1, 12, 10)) is None


def test_default_policy_is_the_shipped_file() -> None:
    path = REPO / "gateway" / "deadlines.toml"
    assert load_deadline_policy(path).rules == POLICY.rules


def _default() -> dict[str, Any]:
    return {
        "version": 1,
        "rules": {
            "socialjour": {
                "district": {
                    "after_hours_handover": {"kind": "next_business_day_at", "at": "12:00"}
                }
            }
        },
    }


def _with_rule(**rule: Any) -> dict[str, Any]:
    obj = _default()
    obj["rules"]["socialjour"]["district"]["after_hours_handover"] = rule
    return obj


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"rules": {}}, "missing"),
        ({**_default(), "version": 2}, "version"),
        ({**_default(), "extra": 1}, "unknown keys"),
        ({"version": 1, "rules": {"police": {}}}, "unknown unit kind 'police'"),
        ({"version": 1, "rules": {"sav": {"court": {}}}}, "unknown unit kind 'court'"),
        (
            {"version": 1, "rules": {"sav": {"district": {"after_hour_handover": {}}}}},
            "unknown purpose 'after_hour_handover'",
        ),
        (_with_rule(kind="weeks", n=2), "kind"),
        (_with_rule(kind="next_business_day_at"), "missing"),
        (_with_rule(kind="next_business_day_at", at="25:00"), "HH:MM"),
        (_with_rule(kind="next_business_day_at", at="12:00", n=1), "unknown keys"),
        (_with_rule(kind="next_business_day_at", at="06:00"), "office hours"),
        (_with_rule(kind="business_days", n=0), "whole number"),
        (_with_rule(kind="business_days", n=True), "whole number"),
        (_with_rule(kind="calendar_days", n=400), "whole number"),
        (_with_rule(kind="calendar_days", n=14, adjust="sideways"), "adjust"),
        ({**_default(), "calendar": {"extra_non_working": ["boxing_day"]}}, "boxing_day"),
        ({**_default(), "calendar": {"office_open": "18:00"}}, "open before"),
        ({**_default(), "calendar": {"closed_dates": ["2026-05-15"]}}, "TOML dates"),
        ({**_default(), "rules": []}, "must be a table"),
    ],
)
def test_invalid_policies_are_refused_with_the_place(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(DeadlinePolicyError, match=message):
        parse_deadline_policy(obj, VOCAB)


def test_policy_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DeadlinePolicyError, match="cannot read"):
        load_deadline_policy(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = = 1\n", "utf-8")
    with pytest.raises(DeadlinePolicyError, match="not valid TOML"):
        load_deadline_policy(bad)


def test_calendar_section_is_used(tmp_path: Path) -> None:
    text = """
version = 1
[calendar]
office_open = "07:30"
office_close = "16:00"
extra_non_working = []
closed_dates = [2026-01-12]
[rules.socialjour.district.after_hours_handover]
kind = "business_days"
n = 1
"""
    path = tmp_path / "p.toml"
    path.write_text(text, "utf-8")
    policy = load_deadline_policy(path)
    assert tomllib.loads(text)["calendar"]["closed_dates"]  # a real TOML date
    # Friday evening: received Tuesday (Monday closed), due Wednesday 16:00.
    due = policy.due("socialjour", "district", "after_hours_handover", ts(2026, 1, 9, 18))
    assert due == ts(2026, 1, 14, 16)
    assert policy.calendar.is_business_day(datetime(2026, 12, 24).date())


# 2024–2030 covers leap years, both DST changes every year, Easter on many dates.
instants = st.integers(min_value=ts(2024, 1, 1), max_value=ts(2030, 12, 1))


@settings(max_examples=400, deadline=None)
@given(accepted=instants)
def test_socialjour_due_is_a_business_day_at_noon_strictly_after(accepted: int) -> None:
    due = POLICY.due("socialjour", "district", "after_hours_handover", accepted)
    assert due is not None
    assert due > accepted
    local = local_of(due)
    assert POLICY.calendar.is_business_day(local.date())
    assert local.time() == time(12, 0)
    # And it is the first such: no business day opened in between.
    day = local_of(accepted).date()
    while day < local.date():
        opening = POLICY.calendar.at(day, POLICY.calendar.office_open)
        assert not (POLICY.calendar.is_business_day(day) and opening.timestamp() > accepted)
        day += timedelta(days=1)


@settings(max_examples=300, deadline=None)
@given(accepted=instants, n=st.integers(min_value=1, max_value=10))
def test_business_days_due_is_at_closing_on_a_business_day(accepted: int, n: int) -> None:
    due = POLICY.calendar.add_business_days(accepted, n)
    assert due.timestamp() > accepted
    assert POLICY.calendar.is_business_day(due.date())
    assert due.time() == POLICY.calendar.office_close
    assert due.utcoffset() in (timedelta(hours=1), timedelta(hours=2))

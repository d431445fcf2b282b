"""The business calendar: Swedish holidays, de-facto closing days, office hours, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.domain.calendar import BusinessCalendar, CalendarError, unix

TZ = ZoneInfo("Europe/Stockholm")
CAL = BusinessCalendar(years=range(2025, 2028))
NOON = time(12)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


@pytest.mark.parametrize(
    ("day", "open_"),
    [
        (date(2026, 1, 1), False),  # nyårsdagen
        (date(2026, 1, 6), False),  # trettondedag jul
        (date(2026, 4, 3), False),  # långfredagen
        (date(2026, 4, 6), False),  # annandag påsk
        (date(2026, 4, 7), True),
        (date(2026, 5, 1), False),
        (date(2026, 5, 14), False),  # Kristi himmelsfärd
        (date(2026, 5, 15), True),  # bridging day: open unless configured
        (date(2026, 6, 19), False),  # midsommarafton (de facto)
        (date(2026, 12, 24), False),  # julafton (de facto)
        (date(2026, 12, 31), False),  # nyårsafton (de facto)
        (date(2026, 12, 30), True),
        (date(2026, 1, 10), False),  # Saturday
        (date(2026, 1, 11), False),  # Sunday
        (date(2026, 1, 12), True),
    ],
)
def test_business_days(day: date, open_: bool) -> None:
    assert CAL.is_business_day(day) is open_


def test_every_sunday_and_saturday_is_closed_whatever_the_library_says() -> None:
    d = date(2026, 1, 3)
    while d.year == 2026:
        assert not CAL.is_business_day(d)
        assert not CAL.is_business_day(d + timedelta(days=1))
        d += timedelta(days=7)


def test_sunday_option_of_the_library_does_not_change_business_days() -> None:
    # Both behaviours of `holidays` (Sundays listed or not) must give the same weekdays.
    with_sundays = holidays.country_holidays("SE", years=2026, include_sundays=True)
    without = holidays.country_holidays("SE", years=2026, include_sundays=False)
    assert {d for d in with_sundays if d.weekday() < 5} == {d for d in without if d.weekday() < 5}


def test_extra_days_match_the_library_de_facto_category_where_it_has_one() -> None:
    try:
        de_facto = holidays.country_holidays("SE", years=2026, categories=("de_facto",))
    except Exception:  # older releases have no de_facto category
        pytest.skip("this holidays release has no de_facto category")
    assert set(de_facto) == {date(2026, 6, 19), date(2026, 12, 24), date(2026, 12, 31)}


def test_extra_non_working_days_are_configurable() -> None:
    cal = BusinessCalendar(extra_non_working=(), closed_dates={date(2026, 5, 15)})
    assert cal.is_business_day(date(2026, 6, 19))
    assert cal.is_business_day(date(2026, 12, 24))
    assert not cal.is_business_day(date(2026, 5, 15))
    with pytest.raises(CalendarError):
        BusinessCalendar(extra_non_working=("boxing_day",))
    with pytest.raises(CalendarError):
        BusinessCalendar(office_open=time(17), office_close=time(8))


@pytest.mark.parametrize(
    ("year", "eve"),
    [(2025, date(2025, 6, 20)), (2026, date(2026, 6, 19)), (2027, date(2027, 6, 25))],
)
def test_midsummer_eve_is_the_friday_before_midsummer_day(year: int, eve: date) -> None:
    assert not CAL.is_business_day(eve)
    assert CAL.is_business_day(eve - timedelta(days=1))


def test_friday_evening_is_due_monday_noon() -> None:
    due = CAL.next_business_day_at(local(2026, 1, 9, 18, 30), NOON)
    assert due == local(2026, 1, 12, 12, 0)
    assert due.utcoffset() == timedelta(hours=1)


def test_thursday_before_midsummer_is_due_the_monday_after() -> None:
    assert CAL.next_business_day_at(local(2026, 6, 18, 19, 0), NOON) == local(2026, 6, 22, 12)


def test_day_before_christmas_eve_is_due_after_the_christmas_weekend() -> None:
    assert CAL.next_business_day_at(local(2026, 12, 23, 19, 0), NOON) == local(2026, 12, 28, 12)


def test_new_years_eve_and_day() -> None:
    # 2026-12-30 evening: 31 Dec (de facto) and 1 Jan closed, 2-3 Jan weekend.
    assert CAL.next_business_day_at(local(2026, 12, 30, 20), NOON) == local(2027, 1, 4, 12)


def test_easter() -> None:
    # Maundy Thursday evening: Good Friday, the weekend and Easter Monday are skipped.
    assert CAL.next_business_day_at(local(2026, 4, 2, 18), NOON) == local(2026, 4, 7, 12)
    assert CAL.next_business_day(date(2026, 4, 2)) == date(2026, 4, 7)


def test_night_shift_is_due_the_same_morning_and_daytime_the_next_day() -> None:
    # Monday night 02:00 is still "after hours": due the coming Tuesday noon.
    assert CAL.next_business_day_at(local(2026, 1, 13, 2, 0), NOON) == local(2026, 1, 13, 12)
    # Taken while the office was open: the following weekday.
    assert CAL.next_business_day_at(local(2026, 1, 13, 10, 0), NOON) == local(2026, 1, 14, 12)


def test_spring_forward_week_keeps_noon_local() -> None:
    # DST starts Sunday 2026-03-29 02:00 → 03:00 (UTC+1 → UTC+2).
    due = CAL.next_business_day_at(local(2026, 3, 27, 18, 30), NOON)
    assert due == local(2026, 3, 30, 12)
    assert due.utcoffset() == timedelta(hours=2)
    assert due.astimezone(UTC) == datetime(2026, 3, 30, 10, 0, tzinfo=UTC)
    # Unix-seconds input and output agree with the aware ones.
    accepted = unix(local(2026, 3, 27, 18, 30))
    assert unix(CAL.next_business_day_at(accepted, NOON)) == unix(due)


def test_fall_back_week_keeps_noon_local() -> None:
    # DST ends Sunday 2026-10-25 03:00 → 02:00 (UTC+2 → UTC+1).
    due = CAL.next_business_day_at(local(2026, 10, 23, 18, 30), NOON)
    assert due == local(2026, 10, 26, 12)
    assert due.utcoffset() == timedelta(hours=1)
    assert due.astimezone(UTC) == datetime(2026, 10, 26, 11, 0, tzinfo=UTC)


def test_calendar_days_across_dst_keep_the_wall_clock() -> None:
    start = local(2026, 3, 20, 10)
    due = CAL.add_calendar_days(start, 14)
    assert due == local(2026, 4, 3, 10)
    # Aware datetimes in one zone subtract as wall clocks; in UTC the hour is missing.
    assert due.astimezone(UTC) - start.astimezone(UTC) == timedelta(days=14, hours=-1)


def test_calendar_days_adjust_to_business_days() -> None:
    start = local(2026, 3, 20, 10)  # +14 days is Good Friday
    assert CAL.add_calendar_days(start, 14, adjust="next") == local(2026, 4, 7, 10)
    assert CAL.add_calendar_days(start, 14, adjust="previous") == local(2026, 4, 2, 10)
    # "previous" never goes back to or before the start.
    friday = local(2026, 1, 9, 10)
    assert CAL.add_calendar_days(friday, 1, adjust="previous") == local(2026, 1, 10, 10)


def test_add_business_days_counts_from_the_day_of_receipt() -> None:
    assert CAL.add_business_days(local(2026, 1, 12, 10), 1) == local(2026, 1, 13, 17)
    assert CAL.add_business_days(local(2026, 1, 12, 18), 1) == local(2026, 1, 14, 17)
    assert CAL.add_business_days(local(2026, 1, 9, 18, 30), 1) == local(2026, 1, 13, 17)
    assert CAL.add_business_days(local(2026, 1, 12, 10), 0) == local(2026, 1, 12, 17)
    assert CAL.add_business_days(local(2026, 12, 22, 10), 2, at=NOON) == local(2026, 12, 28, 12)


def test_nonexistent_and_repeated_wall_times_resolve() -> None:
    skipped = CAL.at(date(2026, 3, 29), time(2, 30))
    assert (skipped.hour, skipped.minute) == (3, 30)
    assert skipped.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 +02
    repeated = CAL.at(date(2026, 10, 25), time(2, 30))
    assert repeated.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # first 02:30


def test_naive_datetimes_and_datetime_as_date_are_refused() -> None:
    with pytest.raises(CalendarError):
        CAL.next_business_day_at(datetime(2026, 1, 9, 18, 30), NOON)
    with pytest.raises(CalendarError):
        CAL.is_business_day(local(2026, 1, 9, 18))


def test_office_hours() -> None:
    assert CAL.is_office_hours(local(2026, 1, 12, 8, 0))
    assert not CAL.is_office_hours(local(2026, 1, 12, 17, 0))
    assert not CAL.is_office_hours(local(2026, 1, 10, 10, 0))
    assert CAL.received_on(local(2026, 1, 12, 16, 59)) == date(2026, 1, 12)
    assert CAL.received_on(local(2026, 1, 12, 17, 0)) == date(2026, 1, 13)


def test_an_early_time_never_lands_before_acceptance() -> None:
    # 07:30 Tuesday: Tuesday's office has not opened, but 07:00 Tuesday has passed.
    assert CAL.next_business_day_at(local(2026, 1, 13, 7, 30), time(7)) == local(2026, 1, 14, 7)
    assert CAL.add_business_days(local(2026, 1, 13, 13), 0, at=NOON) == local(2026, 1, 14, 12)


@settings(max_examples=300, deadline=None)
@given(
    accepted=st.integers(min_value=1_704_067_200, max_value=1_924_992_000),  # 2024–2030
    at=st.times(),
)
def test_next_business_day_at_any_time_is_after_and_on_a_business_day(
    accepted: int, at: time
) -> None:
    due = CAL.next_business_day_at(accepted, at)
    assert due.timestamp() > accepted
    assert CAL.is_business_day(due.date())
    assert due.time() == at  # no business day has a DST gap

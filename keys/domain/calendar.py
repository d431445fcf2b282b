"""The business calendar: which days a unit works, and when a deadline falls.

Pure: no clock is read here; every function takes the instant it reasons about. All
arithmetic is done on local dates and wall-clock times in ``Europe/Stockholm`` (via
:mod:`zoneinfo`), then converted to aware datetimes / Unix seconds, so "12:00" stays
12:00 local across the DST changes (the UTC offset moves, the wall clock does not).

A business day is a weekday (Mon–Fri) that is

- not a Swedish public holiday (``holidays.country_holidays("SE")``), and
- not one of the configured *extra non-working days*.

Extra non-working days. Midsummer Eve, Christmas Eve and New Year's Eve are not public
holidays in law, but Swedish public administration treats them as such: Lag (1930:173)
om beräkning av lagstadgad tid, 2 §, lets anything due on "lördag, söndag eller annan
allmän helgdag, midsommarafton, julafton eller nyårsafton" be done on the next weekday,
and the city's offices are closed. A deadline that lands there would fire escalations
at a closed office. They are the default; a deployment can drop them or add named
closing days (e.g. a bridging day decided by the city) with ``closed_dates``.

Sundays. Some versions of ``holidays`` list every Sunday in the SE calendar (the
``include_sundays`` option; its default changed between releases). We pass
``include_sundays=False`` and, independently, decide weekends by weekday, so either
behaviour of the library gives the same business days.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

STOCKHOLM = "Europe/Stockholm"

# The named extra non-working days this module knows how to compute.
EXTRA_DAY_RULES = ("midsummer_eve", "christmas_eve", "new_years_eve")
DEFAULT_EXTRA_NON_WORKING: frozenset[str] = frozenset(EXTRA_DAY_RULES)

# A bound on every search for the next business day: the longest real run of
# non-working days in Sweden is 5 (Christmas Eve to the Monday after, or Easter);
# a misconfigured calendar (every date closed) must fail loudly, not loop forever.
_MAX_SEARCH_DAYS = 30


class CalendarError(ValueError):
    """The calendar configuration or a query to it is invalid."""

    code = "calendar_invalid"


def _midsummer_eve(year: int) -> date:
    # Midsummer Day is the Saturday between 20 and 26 June; the Eve is the Friday before.
    june19 = date(year, 6, 19)
    return june19 + timedelta(days=(4 - june19.weekday()) % 7)


def _extra_days(year: int, names: Collection[str]) -> set[date]:
    days: set[date] = set()
    if "midsummer_eve" in names:
        days.add(_midsummer_eve(year))
    if "christmas_eve" in names:
        days.add(date(year, 12, 24))
    if "new_years_eve" in names:
        days.add(date(year, 12, 31))
    return days


class BusinessCalendar:
    """Business days and office hours for the units (Swedish public administration)."""

    def __init__(
        self,
        tz: str = STOCKHOLM,
        office_open: time = time(8),
        office_close: time = time(17),
        years: Iterable[int] = (),
        extra_non_working: Collection[str] = DEFAULT_EXTRA_NON_WORKING,
        closed_dates: Collection[date] = (),
    ) -> None:
        unknown = set(extra_non_working) - set(EXTRA_DAY_RULES)
        if unknown:
            raise CalendarError(
                f"unknown extra non-working days {sorted(unknown)}; known: {list(EXTRA_DAY_RULES)}"
            )
        for t in (office_open, office_close):
            if t.tzinfo is not None:
                raise CalendarError("office hours are local wall-clock times without a zone")
        if not office_open < office_close:
            raise CalendarError("office hours must open before they close")
        self.tz = ZoneInfo(tz)
        self.office_open = office_open
        self.office_close = office_close
        self.extra_non_working = frozenset(extra_non_working)
        self.closed_dates = frozenset(closed_dates)
        self._closed_by_year: dict[int, frozenset[date]] = {}
        for year in years:  # warm the cache for the years the caller expects to query
            self._closed(year)

    # --- days --------------------------------------------------------------------------
    def _closed(self, year: int) -> frozenset[date]:
        closed = self._closed_by_year.get(year)
        if closed is None:
            public = holidays.country_holidays("SE", years=year, include_sundays=False)
            closed = frozenset(
                {*public.keys(), *_extra_days(year, self.extra_non_working)}
                | {d for d in self.closed_dates if d.year == year}
            )
            self._closed_by_year[year] = closed
        return closed

    def is_business_day(self, d: date) -> bool:
        if isinstance(d, datetime):  # a datetime is a date subclass: refuse the ambiguity
            raise CalendarError("is_business_day takes a local date, not a datetime")
        return d.weekday() < 5 and d not in self._closed(d.year)

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after ``d``."""
        for offset in range(1, _MAX_SEARCH_DAYS + 1):
            candidate = d + timedelta(days=offset)
            if self.is_business_day(candidate):
                return candidate
        raise CalendarError("no business day within the search bound; check closed_dates")

    def previous_business_day(self, d: date) -> date:
        """The last business day strictly before ``d``."""
        for offset in range(1, _MAX_SEARCH_DAYS + 1):
            candidate = d - timedelta(days=offset)
            if self.is_business_day(candidate):
                return candidate
        raise CalendarError("no business day within the search bound; check closed_dates")

    def business_day_on_or_after(self, d: date) -> date:
        return d if self.is_business_day(d) else self.next_business_day(d)

    # --- instants ----------------------------------------------------------------------
    def local(self, t: datetime | int) -> datetime:
        """``t`` (aware datetime or Unix seconds) as an aware local datetime."""
        if isinstance(t, datetime):
            if t.tzinfo is None or t.utcoffset() is None:
                # A naive datetime has no defined instant: whose 12:00? Refuse it.
                raise CalendarError("naive datetimes are refused; pass an aware one")
            return t.astimezone(self.tz)
        return datetime.fromtimestamp(t, self.tz)

    def at(self, d: date, wall: time) -> datetime:
        """The instant at local wall-clock ``wall`` on ``d``.

        A wall time skipped by spring-forward resolves to the same wall time after the
        gap (02:30 → 03:30); a repeated one at fall-back to the first (fold=0). Swedish
        DST changes happen on Sundays at 02:00/03:00, never inside office hours, so for
        business-day deadlines this never triggers; it is here so no input is undefined.
        """
        # fold=0: in a repeated hour the first occurrence; in a skipped one the offset
        # before the gap, which the UTC round trip turns into the wall time after it.
        return (
            datetime.combine(d, wall.replace(tzinfo=None, fold=0))
            .replace(tzinfo=self.tz)
            .astimezone(UTC)
            .astimezone(self.tz)
        )

    def is_office_hours(self, t: datetime | int) -> bool:
        lt = self.local(t)
        return self.is_business_day(lt.date()) and self.office_open <= lt.time() < self.office_close

    def received_on(self, t: datetime | int) -> date:
        """The business day on which something arriving at ``t`` counts as received.

        Before closing time on a business day: that day. After closing, or on a day off:
        the next business day (as for post arriving at a closed office).
        """
        lt = self.local(t)
        if self.is_business_day(lt.date()) and lt.time() < self.office_close:
            return lt.date()
        return self.next_business_day(lt.date())

    def next_business_day_at(self, t: datetime | int, at: time) -> datetime:
        """ "Hand it over the following weekday at ``at``": a deadline for after-hours work.

        The due day is the first business day whose office opens after ``t``: a matter
        taken on Friday 18:30 or Sunday is due Monday; one taken on Tuesday 02:00 (the
        Monday night shift) is due Tuesday; one taken on Tuesday 10:00, when the office
        was already open, is due Wednesday. The result is always strictly after ``t``.
        """
        lt = self.local(t)
        day = lt.date()
        if not (self.is_business_day(day) and lt < self.at(day, self.office_open)):
            day = self.next_business_day(day)
        due = self.at(day, at)
        while due <= lt:  # only when ``at`` is before opening time; keep it strictly after
            day = self.next_business_day(day)
            due = self.at(day, at)
        return due

    def add_business_days(self, t: datetime | int, n: int, at: time | None = None) -> datetime:
        """The end (``at``, default closing time) of the ``n``-th business day after receipt.

        Counting starts from :meth:`received_on`: ``n=1`` from Monday 10:00 is Tuesday at
        closing time; from Monday 18:00 (received Tuesday) it is Wednesday. ``n=0`` is the
        day of receipt. The result is always strictly after ``t``.
        """
        if n < 0:
            raise CalendarError("n must not be negative")
        lt = self.local(t)
        day = self.received_on(lt)
        for _ in range(n):
            day = self.next_business_day(day)
        wall = self.office_close if at is None else at
        due = self.at(day, wall)
        while due <= lt:
            day = self.next_business_day(day)
            due = self.at(day, wall)
        return due

    def add_calendar_days(
        self, t: datetime | int, n: int, at: time | None = None, adjust: str = "keep"
    ) -> datetime:
        """``n`` calendar days after ``t`` at the same local wall time (or at ``at``).

        ``adjust`` says what happens when that day is not a business day: ``keep`` it,
        move to the ``next`` business day (the Lag 1930:173 rule for statutory periods),
        or to the ``previous`` one (for a decision that lapses: act before it does). A
        ``previous`` that would land at or before ``t`` keeps the unadjusted day.
        """
        if n < 0:
            raise CalendarError("n must not be negative")
        if adjust not in ("keep", "next", "previous"):
            raise CalendarError("adjust must be keep, next or previous")
        lt = self.local(t)
        wall = lt.time().replace(tzinfo=None, fold=0) if at is None else at
        day = lt.date() + timedelta(days=n)
        due = self.at(day, wall)
        if not self.is_business_day(day) and adjust != "keep":
            moved = self.next_business_day(day) if adjust == "next" else None
            if moved is None:
                moved = self.previous_business_day(day)
            candidate = self.at(moved, wall)
            if candidate > lt:
                due = candidate
        return due


def unix(t: datetime) -> int:
    """Whole Unix seconds of an aware datetime (deadlines are on whole minutes)."""
    if t.tzinfo is None:
        raise CalendarError("naive datetimes are refused; pass an aware one")
    return int(t.timestamp())

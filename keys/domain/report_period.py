"""Report periods in local time: months are Europe/Stockholm calendar months. Pure.

A handover accepted at 00:30 on 1 March in Gothenburg belongs to March, although it is
still February in UTC; the city's follow-up counts by its own calendar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from keys.domain.calendar import STOCKHOLM

_ZONE = ZoneInfo(STOCKHOLM)
_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
_YEAR = re.compile(r"^[0-9]{4}$")


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in Unix seconds, and the months it covers (``YYYY-MM``)."""

    start: int
    end: int
    months: tuple[str, ...]
    year: int | None = None  # set for a whole year (the chart then shows 12 months)


def month_of(t: int) -> str:
    """``YYYY-MM`` of the Unix time ``t`` in Stockholm."""
    return datetime.fromtimestamp(t, UTC).astimezone(_ZONE).strftime("%Y-%m")


def _start_of(year: int, month: int) -> int:
    if month == 13:
        year, month = year + 1, 1
    return int(datetime(year, month, 1, tzinfo=_ZONE).timestamp())


def month_period(text: str) -> Period:
    match = _MONTH.fullmatch(text)
    if match is None:
        raise ValueError("a month is YYYY-MM")
    year, month = int(match.group(1)), int(match.group(2))
    return Period(_start_of(year, month), _start_of(year, month + 1), (text,))


def year_period(text: str) -> Period:
    if _YEAR.fullmatch(text) is None:
        raise ValueError("a year is YYYY")
    year = int(text)
    months = tuple(f"{year:04d}-{m:02d}" for m in range(1, 13))
    return Period(_start_of(year, 1), _start_of(year + 1, 1), months, year)

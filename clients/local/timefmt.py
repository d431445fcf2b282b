"""Times as an officer reads them: Stockholm time, whatever the machine's TZ says.

Due times are Swedish office hours; a laptop or server on UTC must not show "12:00"
as "11:00".
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

CITY_TZ = ZoneInfo("Europe/Stockholm")


def when(ts: int | None) -> str:
    """Stockholm time, minutes: what an officer compares with the case file."""
    if not ts:
        return "—"
    return datetime.fromtimestamp(ts, CITY_TZ).strftime("%Y-%m-%d %H:%M")


def day(ts: int | None) -> str:
    if not ts:
        return "—"
    return datetime.fromtimestamp(ts, CITY_TZ).strftime("%Y-%m-%d")

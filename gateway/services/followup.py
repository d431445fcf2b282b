"""Follow-up figures (uppföljning): the de-identified monthly report, for the CLI
(``stafett-gateway report``) and the admin endpoint (``GET /v1/admin/report``).

Every export is audited (``report_exported``: who, which period, which format), so the
security admins can see who took figures out of the gateway, even de-identified ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.db import audit_trail as audit
from gateway.db import report_store
from gateway.db.engine import SessionMaker
from gateway.report import ReportRow, aggregate, to_csv, to_json
from keys.domain.report_period import Period, month_period, year_period

FORMATS = {"csv": "text/csv", "json": "application/json"}


@dataclass(frozen=True)
class Report:
    rows: list[ReportRow]
    period: Period
    fmt: str
    text: str

    @property
    def content_type(self) -> str:
        return FORMATS[self.fmt]


def period_of(month: str | None, year: str | None) -> Period:
    """Exactly one of ``month`` (YYYY-MM) or ``year`` (YYYY); ValueError otherwise."""
    if (month is None) == (year is None):
        raise ValueError("give either a month (YYYY-MM) or a year (YYYY)")
    return month_period(month) if month is not None else year_period(str(year))


async def follow_up_report(
    sessionmaker: SessionMaker, period: Period, *, fmt: str, who: str, now: int
) -> Report:
    """Aggregate, suppress and serialise the figures for ``period``; audited."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}")
    async with sessionmaker.begin() as session:
        events = await report_store.report_events(session, period)
        await audit.record(
            session,
            "report_exported",
            now=now,
            by=who,
            months=[period.months[0], period.months[-1]],
            format=fmt,
        )
    rows = aggregate(events)
    return Report(rows, period, fmt, to_csv(rows) if fmt == "csv" else to_json(rows))

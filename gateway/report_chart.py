"""The yearly chart of the follow-up figures (PNG). Imports matplotlib; only
:func:`gateway.report.render_png` imports this module, lazily.

The figure is built with the object API and the Agg canvas directly (no ``pyplot``):
no global backend switch, no shared state between threads or requests.

Only visible values are drawn; a suppressed cell counts as zero here. A chart of
totals taken from the unsuppressed data would be a margin, and a margin minus the
visible cells of the export gives back the suppressed one (see :mod:`gateway.report`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gateway.report import OUTCOMES, SMALL_CELL, ReportRow

_LABELS = {
    "handed_over": "Överlämnade",
    "rejected": "Avvisade",
    "expired": "Ej hämtade (utgångna)",
    "withdrawn": "Återkallat samtycke",
    "recalled": "Återtagna",
    "pending": "Väntande",
}
_MONTHS = ("jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec")


def monthly_totals(
    rows: Sequence[ReportRow], year: int | None = None
) -> tuple[list[str], dict[str, list[int]]]:
    """Visible outcome counts summed per month (``YYYY-MM``), months in order."""
    if year is not None:
        months = [f"{year:04d}-{m:02d}" for m in range(1, 13)]
    else:
        months = sorted({row.key[0] for row in rows})
    index = {m: i for i, m in enumerate(months)}
    series = {o: [0] * len(months) for o in OUTCOMES}
    for row in rows:
        i = index.get(row.key[0])
        if i is None:
            continue
        for outcome in OUTCOMES:
            value = row.values.get(outcome)
            if isinstance(value, int):  # None = suppressed: not drawn
                series[outcome][i] += value
    return months, series


def render_png(
    rows: Sequence[ReportRow], path: str | os.PathLike[str], *, year: int | None
) -> None:
    months, series = monthly_totals(rows, year)
    fig = Figure(figsize=(10, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = list(range(len(months)))
    bottom = [0] * len(months)
    for outcome in OUTCOMES:
        values = series[outcome]
        if not any(values):
            continue
        ax.bar(positions, values, bottom=bottom, label=_LABELS[outcome])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(positions, [_month_label(m, year) for m in months])
    ax.set_ylabel("Antal meddelanden")
    ax.set_title(f"Stafett: överlämningar per månad{f' {year}' if year else ''}")
    if any(bottom):
        ax.legend(loc="upper left", fontsize="small")
    fig.text(
        0.01,
        0.01,
        f"Avidentifierade uppgifter. Celler med färre än {SMALL_CELL} visas inte.",
        fontsize="small",
    )
    # Write next to the target and rename: a reader never sees half a PNG.
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".chart-", suffix=".png", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _month_label(month: str, year: int | None) -> str:
    name = _MONTHS[int(month[5:7]) - 1]
    return name if year is not None else f"{name}\n{month[:4]}"

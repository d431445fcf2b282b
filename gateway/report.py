"""Follow-up figures: de-identified monthly aggregates of the handovers. Pure.

Input: one plain row per accepted message or refused send, already reduced to
``(month, sender_unit, recipient_unit, category, purpose, outcome, refused_code,
seconds_to_handover, escalated)`` (the SQL that selects them lives with the store).
Output: one row per month × unit pair × category × purpose with counts, the median and
90th percentile of the time to handover, as CSV or JSON, and a PNG chart for the
yearly report (:mod:`gateway.report_chart`).

Disclosure control — no one can be singled out:

- **No identifiers.** Only unit codes (organisations), vocabulary codes and counts leave
  this module. Every input field is checked: a unit must be a unit name (a kid or
  device id has a ``/`` and names an officer), and anything shaped like a pseudonym
  (64 hex) or a message id (UUID) is refused, so a wrong column in the SQL fails loudly
  instead of exporting identities. A refused send whose category or purpose is not in
  the vocabulary is counted as ``unknown``: free text never reaches the export.
- **Small cells.** A count from 1 to 4 is suppressed (``null`` in JSON, ``<5`` in CSV).
  Zero is shown: "nobody" points at no one. If a row's total is itself 1–4, every
  part of it is suppressed, zeros included, because "3 sent, 0 expired" still tells
  what happened to each of those few people.
- **No recovery by subtraction.** ``sent`` is the sum of the outcome counts and
  ``refused`` the sum of the refusal-code counts. When any part is suppressed, the
  total is suppressed too (complementary suppression, ``x`` in CSV). We chose to hide
  the total rather than a second part: with zeros shown, two suppressed parts of a
  known total can still be pinned down (a sum of 2 means 1 + 1). No margins (totals
  over months, units or categories) are emitted, and the chart draws only visible
  values, because any margin computed from unsuppressed data reopens the subtraction.
- **Times.** Percentiles use the nearest-rank definition: the value at 1-based rank
  ``ceil(p/100 · n)`` of the sorted times, so every figure is an observed time, never an
  interpolation. The median needs at least 5 handovers; the 90th percentile needs 10
  (below that it is the maximum or next to it: one person's time). Both are reported
  in hours rounded to 0.1 h.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keys.crypto.keypairs import is_valid_name
from keys.protocol.refusals import REFUSALS
from keys.protocol.vocabulary import Vocabulary, load_vocabulary

SMALL_CELL = 5  # counts below this (and above zero) are suppressed
P90_MIN = 10  # the 90th percentile of fewer is (next to) the maximum: one person's time
OUTCOMES = ("handed_over", "rejected", "expired", "withdrawn", "recalled", "pending")
REFUSED = "refused"
UNKNOWN = "unknown"
DEFAULT_REFUSAL_CODES: tuple[str, ...] = tuple(sorted(REFUSALS))
KEY_FIELDS = ("month", "sender_unit", "recipient_unit", "category", "purpose")
TIME_FIELDS = ("median_hours", "p90_hours")
MARKERS = {"small_cell": "<5", "complementary": "x", "too_few": f"<{P90_MIN}"}

_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Shapes of identifiers that must never be exported (threat: a pseudonym or message id
# fed into a unit or code column by mistake would link the export to a person).
_IDENTIFIER = re.compile(
    r"[0-9a-f]{32,}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I
)


@dataclass(frozen=True)
class ReportEvent:
    """One accepted message (its outcome so far) or one refused send."""

    month: str  # "YYYY-MM", local time
    sender_unit: str
    recipient_unit: str
    category: str
    purpose: str
    outcome: str  # one of OUTCOMES or "refused"
    refused_code: str | None = None
    seconds_to_handover: int | None = None
    escalated: bool = False


@dataclass(frozen=True)
class ReportRow:
    """One cell group. ``values[name]`` is ``None`` when ``suppressed[name]`` says why."""

    key: tuple[str, str, str, str, str]
    values: Mapping[str, int | float | None]
    suppressed: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            **dict(zip(KEY_FIELDS, self.key, strict=True)),
            **self.values,
            "suppressed": dict(sorted(self.suppressed.items())),
        }


def count_columns(refusal_codes: Sequence[str] = DEFAULT_REFUSAL_CODES) -> tuple[str, ...]:
    return (
        "sent",
        *OUTCOMES,
        "escalated",
        REFUSED,
        *(f"refused_{c}" for c in refusal_codes),
        "refused_other",
    )


def nearest_rank(values: Sequence[int], p: int) -> int:
    """The ``p``-th percentile by nearest rank: sorted value at rank ceil(p·n/100)."""
    if not values or not 0 < p <= 100:
        raise ValueError("nearest_rank needs values and 0 < p <= 100")
    rank = -(-p * len(values) // 100)  # integer ceil: 0.9 * 10 in floats is not 9
    return sorted(values)[rank - 1]


def aggregate(
    events: Iterable[ReportEvent | Sequence[Any]],
    *,
    vocabulary: Vocabulary | None = None,
    refusal_codes: Sequence[str] = DEFAULT_REFUSAL_CODES,
) -> list[ReportRow]:
    """Suppressed rows, sorted by key. Raises ``ValueError`` on a malformed event."""
    vocab = vocabulary or load_vocabulary()
    columns = count_columns(refusal_codes)
    counts: dict[tuple[str, str, str, str, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(columns, 0)
    )
    times: dict[tuple[str, str, str, str, str], list[int]] = defaultdict(list)
    for raw in events:
        event = _checked(raw if isinstance(raw, ReportEvent) else ReportEvent(*raw), vocab)
        key = (event.month, event.sender_unit, event.recipient_unit, event.category, event.purpose)
        cell = counts[key]
        if event.outcome == REFUSED:
            cell[REFUSED] += 1
            code = event.refused_code if event.refused_code in refusal_codes else "other"
            cell[f"refused_{code}"] += 1
            continue
        cell["sent"] += 1
        cell[event.outcome] += 1
        cell["escalated"] += int(event.escalated)
        if event.seconds_to_handover is not None:
            times[key].append(event.seconds_to_handover)
    return [
        _suppress(key, counts[key], times.get(key, []), refusal_codes) for key in sorted(counts)
    ]


def _suppress(
    key: tuple[str, str, str, str, str],
    cell: Mapping[str, int],
    durations: Sequence[int],
    refusal_codes: Sequence[str],
) -> ReportRow:
    values: dict[str, int | float | None] = dict(cell)
    why: dict[str, str] = {}
    for name, value in cell.items():
        if 0 < value < SMALL_CELL:
            why[name] = "small_cell"
    groups = (
        ("sent", (*OUTCOMES, "escalated")),
        (REFUSED, (*(f"refused_{c}" for c in refusal_codes), "refused_other")),
    )
    for total, parts in groups:
        if total in why:  # a tiny group: its zeros would tell what happened to each
            for part in parts:
                why.setdefault(part, "small_cell")
        elif any(part in why for part in parts if part != "escalated"):
            why[total] = "complementary"  # or total − shown parts = the hidden one
    ordered = sorted(durations)
    values["median_hours"] = _hours(nearest_rank(ordered, 50)) if ordered else None
    values["p90_hours"] = _hours(nearest_rank(ordered, 90)) if ordered else None
    if len(ordered) < SMALL_CELL:
        why["median_hours"] = "small_cell"
    if len(ordered) < P90_MIN:
        why["p90_hours"] = "small_cell" if len(ordered) < SMALL_CELL else "too_few"
    for name in why:
        values[name] = None
    return ReportRow(key, values, why)


def _hours(seconds: int) -> float:
    return round(seconds / 3600, 1)


def _checked(event: ReportEvent, vocab: Vocabulary) -> ReportEvent:
    if not isinstance(event.month, str) or not _MONTH.fullmatch(event.month):
        raise ValueError("month must be YYYY-MM")
    for unit in (event.sender_unit, event.recipient_unit):
        # is_valid_name refuses "/" (kids and device ids name officers).
        if not isinstance(unit, str) or not is_valid_name(unit) or _IDENTIFIER.search(unit):
            raise ValueError("sender_unit and recipient_unit must be unit names")
    if event.outcome not in (*OUTCOMES, REFUSED):
        raise ValueError(f"outcome must be one of {[*OUTCOMES, REFUSED]}")
    if type(event.escalated) is not bool:
        raise ValueError("escalated must be true or false")
    category, purpose = event.category, event.purpose
    if event.outcome == REFUSED:
        code = event.refused_code
        if not isinstance(code, str) or not _CODE.fullmatch(code) or _IDENTIFIER.search(code):
            raise ValueError("a refused send needs a snake_case refusal code")
        if event.seconds_to_handover is not None or event.escalated:
            raise ValueError("a refused send has no handover time and no escalation")
        # The header of a refused send may name anything: keep only vocabulary codes.
        category = category if category in vocab.categories else UNKNOWN
        purpose = purpose if purpose in vocab.purposes else UNKNOWN
    else:
        if event.refused_code is not None:
            raise ValueError("only a refused send has a refusal code")
        if category not in vocab.categories or purpose not in vocab.purposes:
            raise ValueError("category and purpose must be vocabulary codes")
        seconds = event.seconds_to_handover
        if (seconds is not None) != (event.outcome == "handed_over"):
            raise ValueError("a handover time belongs to handed-over messages only")
        if seconds is not None and (type(seconds) is not int or seconds < 0):
            raise ValueError("seconds_to_handover must be a non-negative integer")
    if category == event.category and purpose == event.purpose:
        return event
    return ReportEvent(
        event.month,
        event.sender_unit,
        event.recipient_unit,
        category,
        purpose,
        event.outcome,
        event.refused_code,
        event.seconds_to_handover,
        event.escalated,
    )


def columns_of(rows: Sequence[ReportRow]) -> tuple[str, ...]:
    value_names = list(rows[0].values) if rows else [*count_columns(), *TIME_FIELDS]
    return (*KEY_FIELDS, *value_names)


def to_csv(rows: Sequence[ReportRow]) -> str:
    """CSV (RFC 4180, ``\\r\\n``): suppressed cells as ``<5``, ``<10`` or ``x``.

    Every cell is a unit code, vocabulary code, number or marker, none starting with
    ``=``, ``+``, ``-`` or ``@``, so a spreadsheet cannot read one as a formula.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    names = columns_of(rows)
    writer.writerow(names)
    for row in rows:
        flat = row.as_dict()
        writer.writerow(
            MARKERS[row.suppressed[n]] if n in row.suppressed else flat[n] for n in names
        )
    return out.getvalue()


def to_json(rows: Sequence[ReportRow]) -> str:
    """JSON: suppressed values are ``null``; each row's ``suppressed`` says why."""
    doc = {
        "v": 1,
        "suppression": {
            "small_cell": f"1 to {SMALL_CELL - 1}, or part of a total that is",
            "complementary": "total hidden because a part of it is hidden",
            "too_few": f"90th percentile of fewer than {P90_MIN} handovers",
        },
        "percentile": "nearest rank: sorted value at rank ceil(p*n/100); hours, 0.1 h",
        "rows": [row.as_dict() for row in rows],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def render_png(
    rows: Sequence[ReportRow], path: str | os.PathLike[str], *, year: int | None = None
) -> None:
    """The yearly chart (see :mod:`gateway.report_chart`; needs matplotlib)."""
    from gateway.report_chart import render_png as render  # lazy: matplotlib is heavy

    render(rows, path, year=year)

"""Due times per flow: a TOML policy keyed by sender kind → recipient kind × purpose.

The gateway stamps every accepted message with ``due`` from this policy (inbox and
outbox show it; the escalation job compares it with ``now``). The default policy ships
as ``gateway/deadlines.toml`` and documents each rule's ground in DOMAIN.md.

The file is checked strictly when it is loaded (at start-up): an unknown unit kind,
purpose, rule kind or key is refused with the place it occurred. Threat: a typo such
as ``after_hour_handover`` would otherwise silently disable the deadline of a whole flow,
and nobody would be told when a handover from socialjour is left lying.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Any

from keys.domain.calendar import EXTRA_DAY_RULES, BusinessCalendar, CalendarError, unix
from keys.protocol.vocabulary import Vocabulary, load_vocabulary

RULE_KINDS = ("next_business_day_at", "business_days", "calendar_days")
ADJUSTMENTS = ("keep", "next", "previous")
_RULE_KEYS = {
    "next_business_day_at": ({"kind", "at"}, set()),
    "business_days": ({"kind", "n"}, {"at"}),
    "calendar_days": ({"kind", "n"}, {"at", "adjust"}),
}
_MAX_DAYS = 366  # a "deadline" a year away is a configuration error, not a deadline
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")

FlowKey = tuple[str, str, str]  # (sender unit kind, recipient unit kind, purpose)


class DeadlinePolicyError(ValueError):
    """The deadline policy file is invalid (raised at start-up, names the place)."""

    code = "deadline_policy_invalid"


@dataclass(frozen=True)
class DeadlineRule:
    kind: str
    n: int = 0
    at: time | None = None
    adjust: str = "keep"


@dataclass(frozen=True, eq=False)
class DeadlinePolicy:
    calendar: BusinessCalendar
    rules: Mapping[FlowKey, DeadlineRule] = field(default_factory=dict)

    def rule_for(self, sender_kind: str, recipient_kind: str, purpose: str) -> DeadlineRule | None:
        return self.rules.get((sender_kind, recipient_kind, purpose))

    def due_at(
        self, sender_kind: str, recipient_kind: str, purpose: str, accepted_at: int
    ) -> datetime | None:
        """The due time as an aware local datetime, or ``None`` if the flow has none."""
        rule = self.rule_for(sender_kind, recipient_kind, purpose)
        if rule is None:
            return None
        cal = self.calendar
        if rule.kind == "next_business_day_at":
            if rule.at is None:  # the loader requires it; a hand-built rule might not
                raise DeadlinePolicyError("next_business_day_at needs a time")
            return cal.next_business_day_at(accepted_at, rule.at)
        if rule.kind == "business_days":
            return cal.add_business_days(accepted_at, rule.n, rule.at)
        return cal.add_calendar_days(accepted_at, rule.n, rule.at, rule.adjust)

    def due(
        self, sender_kind: str, recipient_kind: str, purpose: str, accepted_at: int
    ) -> int | None:
        """The due time in Unix seconds, or ``None`` if the flow has no deadline."""
        at = self.due_at(sender_kind, recipient_kind, purpose, accepted_at)
        return None if at is None else unix(at)


# Package data of ``gateway`` (pyproject: ``gateway = ["*.toml"]``). A path rather than
# importlib.resources, for the reason given at ``vocabulary.VOCABULARY_PATH``: the
# editable install can expose the package as a namespace, which ``files()`` cannot read.
DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "gateway" / "deadlines.toml"


def load_deadline_policy(
    path: Path | str | None = None, vocabulary: Vocabulary | None = None
) -> DeadlinePolicy:
    """Read and check a deadline policy; ``None`` loads the default shipped with the gateway."""
    try:
        text = Path(DEFAULT_POLICY_PATH if path is None else path).read_text("utf-8")
        obj = tomllib.loads(text)
    except OSError as exc:
        raise DeadlinePolicyError(
            f"cannot read the deadline policy: {exc.strerror or type(exc).__name__}"
        ) from None
    except UnicodeDecodeError:
        raise DeadlinePolicyError("the deadline policy is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeadlinePolicyError(f"the deadline policy is not valid TOML: {exc}") from None
    return parse_deadline_policy(obj, vocabulary or load_vocabulary())


def parse_deadline_policy(obj: Mapping[str, Any], vocabulary: Vocabulary) -> DeadlinePolicy:
    _only(obj, {"version", "rules"}, {"calendar"}, "the policy")
    if obj["version"] != 1 or isinstance(obj["version"], bool):
        raise DeadlinePolicyError("version: only version 1 is supported")
    calendar = _calendar(_table(obj.get("calendar", {}), "calendar"))
    rules: dict[FlowKey, DeadlineRule] = {}
    for sender, by_recipient in _table(obj["rules"], "rules").items():
        _term(sender, vocabulary.unit_kinds, "unit kind", f"rules.{sender}")
        for recipient, by_purpose in _table(by_recipient, f"rules.{sender}").items():
            where = f"rules.{sender}.{recipient}"
            _term(recipient, vocabulary.unit_kinds, "unit kind", where)
            for purpose, rule in _table(by_purpose, where).items():
                _term(purpose, vocabulary.purposes, "purpose", f"{where}.{purpose}")
                rules[(sender, recipient, purpose)] = _rule(
                    _table(rule, f"{where}.{purpose}"), calendar, f"{where}.{purpose}"
                )
    return DeadlinePolicy(calendar, MappingProxyType(rules))


def _calendar(obj: Mapping[str, Any]) -> BusinessCalendar:
    _only(
        obj, set(), {"office_open", "office_close", "extra_non_working", "closed_dates"}, "calendar"
    )
    extra = obj.get("extra_non_working", sorted(EXTRA_DAY_RULES))
    if not isinstance(extra, list) or not all(isinstance(e, str) for e in extra):
        raise DeadlinePolicyError("calendar.extra_non_working: must be a list of names")
    closed = obj.get("closed_dates", [])
    # A TOML datetime is a date subclass; a closing day is a whole local date.
    if not isinstance(closed, list) or not all(
        isinstance(d, date) and not isinstance(d, datetime) for d in closed
    ):
        raise DeadlinePolicyError("calendar.closed_dates: must be a list of TOML dates")
    try:
        return BusinessCalendar(
            office_open=_time(obj.get("office_open", "08:00"), "calendar.office_open"),
            office_close=_time(obj.get("office_close", "17:00"), "calendar.office_close"),
            extra_non_working=extra,
            closed_dates=closed,
        )
    except CalendarError as exc:
        raise DeadlinePolicyError(f"calendar: {exc}") from None


def _rule(obj: Mapping[str, Any], calendar: BusinessCalendar, where: str) -> DeadlineRule:
    kind = obj.get("kind")
    if kind not in RULE_KINDS:
        raise DeadlinePolicyError(f"{where}.kind: must be one of {list(RULE_KINDS)}")
    required, optional = _RULE_KEYS[kind]
    _only(obj, required, optional, where)
    n = obj.get("n", 0)
    if "n" in obj and (type(n) is not int or not 1 <= n <= _MAX_DAYS):
        raise DeadlinePolicyError(f"{where}.n: must be a whole number from 1 to {_MAX_DAYS}")
    at = _time(obj["at"], f"{where}.at") if "at" in obj else None
    # A business-day deadline outside office hours would escalate to a closed office.
    in_hours = at is None or calendar.office_open <= at <= calendar.office_close
    if kind != "calendar_days" and not in_hours:
        raise DeadlinePolicyError(f"{where}.at: must be within office hours")
    adjust = obj.get("adjust", "keep")
    if adjust not in ADJUSTMENTS:
        raise DeadlinePolicyError(f"{where}.adjust: must be one of {list(ADJUSTMENTS)}")
    return DeadlineRule(kind, n, at, adjust)


def _time(value: Any, where: str) -> time:
    m = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise DeadlinePolicyError(f'{where}: must be a local time "HH:MM"')
    return time(int(m.group(1)), int(m.group(2)))


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DeadlinePolicyError(f"{where}: must be a table")
    return value


def _term(term: str, known: frozenset[str], what: str, where: str) -> None:
    if term not in known:
        raise DeadlinePolicyError(f"{where}: unknown {what} {term!r}")


def _only(obj: Mapping[str, Any], required: set[str], optional: set[str], where: str) -> None:
    missing = required - set(obj)
    if missing:
        raise DeadlinePolicyError(f"{where}: missing {sorted(missing)}")
    unknown = set(obj) - required - optional
    if unknown:
        raise DeadlinePolicyError(f"{where}: unknown keys {sorted(unknown)}")

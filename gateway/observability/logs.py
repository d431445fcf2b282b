"""Logging set-up: text or JSON lines, a request id on every record, quiet dependencies.

Threats, and where each is handled:
- content, subject references, personnummer, free text or keys reaching a log file
  that far more people can read than the messages (operators, log shippers, a SIEM).
  Our own log calls never pass them (reviewed; tests/gateway/test_log_hygiene.py runs a
  whole flow at DEBUG and searches the output). Dependencies are the risk: SQLAlchemy's
  engine logger prints statements *with bound parameters* at INFO/DEBUG, aiosqlite logs
  every call with its arguments at DEBUG, asyncpg likewise. Those loggers are held at
  WARNING here, and :class:`DependencyFilter` on our handler drops their lower records
  even if something (``echo=True``, a debugging operator) lowers the level later.
  (Exception texts are covered by ``hide_parameters=True`` in gateway.db.engine.)
- a database outage turning into a traceback per request and per poll second, which
  fills disks and buries everything else: :class:`OutageFilter` logs the first one as a
  single line, then one line per interval with the count of what it held back.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sqlite3
import sys
import time
from typing import IO, Any

# The id of the request being handled (set by gateway.observability.middleware); tasks
# started while handling it inherit it, so their records carry it too.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stafett_request_id", default=None
)

# Loggers of dependencies that print SQL parameters or call arguments below WARNING.
QUIET_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "alembic.runtime.migration")
# Record attributes a JSON line may carry besides the message (set by our own calls).
_EXTRA_FIELDS = ("method", "route", "status", "duration_ms", "code", "job", "suppressed")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True


class DependencyFilter(logging.Filter):
    """Drop dependency records below WARNING whatever their logger's level says."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(
            record.name == name or record.name.startswith(name + ".") for name in QUIET_LOGGERS
        )


def is_outage(exc: BaseException | None) -> bool:
    """The database (or its network) is unavailable — not a bug of ours."""
    seen = 0
    while exc is not None and seen < 10:
        name = type(exc).__name__
        if isinstance(exc, ConnectionError | TimeoutError | sqlite3.OperationalError):
            return True
        # By name: sqlalchemy.exc.OperationalError/InterfaceError and asyncpg's
        # connection errors, without importing the drivers here.
        if name in ("OperationalError", "InterfaceError") or "Connect" in name:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class OutageFilter(logging.Filter):
    """One line per ``interval_s`` for records caused by a database outage.

    The first such record passes, without its traceback (the class name says enough);
    the following ones within the interval are counted and dropped; the next one after
    it passes with the count. ``clock`` is a parameter so a test can drive it.
    """

    def __init__(self, interval_s: float = 60.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not is_outage(exc):
            return True
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            self._held += 1
            return False
        record.msg = f"database unavailable ({type(exc).__name__}): {record.getMessage()}"
        record.args = None
        if self._held:
            record.msg += f"; {self._held} similar lines suppressed"
            record.suppressed = self._held
        record.exc_info = None
        record.exc_text = None
        self._last, self._held = now, 0
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for name in _EXTRA_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


JsonFormatter.converter = time.gmtime  # "Z" in the timestamp means what it says


def quiet_dependencies() -> None:
    """Hold the parameter-printing loggers at WARNING (idempotent; also done by
    create_app, so an embedding that configures logging itself is covered)."""
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def setup_logging(
    log_format: str = "text",
    log_level: str = "INFO",
    stream: IO[str] | None = None,
    outage_interval_s: float = 60.0,
) -> logging.Handler:
    """Replace the root logger's handlers with one configured handler; return it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    for item in (RequestIdFilter(), DependencyFilter(), OutageFilter(outage_interval_s)):
        handler.addFilter(item)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(log_level.upper())
    quiet_dependencies()
    # aiohttp's own access logger is off (gateway.observability writes the access log
    # with route templates); its server logger is replaced by gateway.transport.
    return handler

"""Output of the ``stafett`` CLI: tables, times, a progress bar, JSON for scripts.

Text goes to stdout, warnings and progress to stderr, so ``--json`` output on stdout
stays one parseable document whatever else is shown.
"""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from clients.cli.texts import Texts
from clients.local.timefmt import CITY_TZ, day, when

PROGRESS_THRESHOLD = 1 << 20  # a bar only for bodies above 1 MiB ("large files")
_BAR = 30
__all__ = ["CITY_TZ", "Output", "Progress", "day", "printable", "table", "when"]


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain left-aligned table; control characters are shown escaped (threat:
    terminal escape sequences smuggled in through ids or names from the gateway)."""
    clean = [[printable(c) for c in row] for row in [list(header), *rows]]
    widths = [max(_width(row[i]) for row in clean) for i in range(len(header))]
    lines = []
    for row in clean:
        cells = [c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def printable(text: str) -> str:
    """Control characters shown escaped: what a gateway sends never drives the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


@dataclass
class Output:
    """Where a command writes; ``json`` mode collects one document for stdout."""

    texts: Texts
    json_mode: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def line(self, text: str) -> None:
        if not self.json_mode:
            print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        print(self.texts("warning", message=printable(text)), file=self.err, flush=True)

    def emit(self, document: Any) -> None:
        if self.json_mode:
            print(
                json.dumps(document, ensure_ascii=False, sort_keys=True), file=self.out, flush=True
            )

    def progress(self, label: str) -> Progress:
        return Progress(label, enabled=not self.json_mode and self.err.isatty(), err=self.err)


@dataclass
class Progress:
    """A one-line bar on stderr for bodies above ``PROGRESS_THRESHOLD``."""

    label: str
    enabled: bool
    err: TextIO
    _shown: bool = False
    _last: float = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < PROGRESS_THRESHOLD:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        share = min(1.0, done / total) if total else 1.0
        filled = int(share * _BAR)
        bar = "#" * filled + "-" * (_BAR - filled)
        mib = f"{done / (1 << 20):.1f}/{total / (1 << 20):.1f} MiB"
        self.err.write(f"\r{self.label} [{bar}] {share * 100:5.1f}% {mib}")
        self.err.flush()
        self._shown = True
        if done >= total:
            self.finish()

    def finish(self) -> None:
        if self._shown:
            self.err.write("\n")
            self.err.flush()
            self._shown = False

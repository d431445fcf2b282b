"""Benchmark dispatcher: ``python -m bench.run <name> [--quick]`` (from the repository root,
so ``bench`` and ``tests.support`` import as packages).

Each benchmark is a module ``bench/<name>.py`` with ``run(quick: bool) -> dict``. Progress
goes to stderr; the last line on stdout is one JSON object with the figures, so CI and
docs/benchmarks.md can quote it. A benchmark whose result holds ``failed`` (a list of
what went wrong, e.g. the relay's correctness check) still prints it, then exits 1.
Add a benchmark by adding a module (``relay``, ``consent_scale``, ...); nothing here
needs to change.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(
        p.stem for p in BENCH_DIR.glob("*.py") if p.stem != "run" and not p.stem.startswith("_")
    )


def load(name: str) -> ModuleType:
    if name not in available():
        raise SystemExit(f"unknown benchmark {name!r}; available: {', '.join(available())}")
    module = importlib.import_module(f"bench.{name}")
    if not callable(getattr(module, "run", None)):
        raise SystemExit(f"bench/{name}.py has no run(quick) function")
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a Stafett benchmark.")
    parser.add_argument("name", help="benchmark module in bench/ (e.g. envelope)")
    parser.add_argument("--quick", action="store_true", help="the short CI variant (< 1 min)")
    # Options after the name that the dispatcher does not know go to the benchmark
    # (``relay --store postgresql --instances 2``), if its run() takes ``argv``.
    args, rest = parser.parse_known_args(argv)
    module = load(args.name)
    extra = {"argv": rest} if "argv" in inspect.signature(module.run).parameters else {}
    if rest and not extra:
        parser.error(f"unknown arguments for {args.name}: {' '.join(rest)}")
    started = time.perf_counter()
    result = dict(module.run(quick=args.quick, **extra))
    result.setdefault("bench", args.name)
    result.setdefault("quick", args.quick)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, sort_keys=True), flush=True)
    if result.get("failed"):
        print(f"{args.name}: failed: {', '.join(result['failed'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

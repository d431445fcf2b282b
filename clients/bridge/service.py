"""``stafett bridge``: the loop, the health file, the lock, and the logs.

One round: verify the directory (and save the verified head), resume and send drops,
collect receipts, take in the inbox. A round that fails (gateway down, disk full) is
logged by kind and retried at the next interval; it never exits the service, so
systemd's restart is for crashes only. ``--once`` runs a single round (for cron, the
tests and the benchmark) and exits 1 when it did not complete.

Logs carry message ids, reason codes and counts — never file names (they may name a
person), personnummer, subject references, case references or content.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clients.bridge import layout
from clients.bridge.handover import vocabulary_terms
from clients.bridge.incoming import Incoming
from clients.bridge.layout import Layout
from clients.bridge.outgoing import Outgoing, OutgoingSettings
from clients.cli.common import Context
from clients.cli.state import CliFailure
from clients.errors import GatewayUnavailable

log = logging.getLogger("stafett.bridge")


@dataclass(frozen=True)
class BridgeSettings:
    root: Path
    interval_s: float
    once: bool
    send: bool
    receive: bool
    outgoing: OutgoingSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="the bridge folder (outbox/, inbox/, state/)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between rounds")
    p.add_argument("--once", action="store_true", help="one round, then exit")
    p.add_argument("--no-send", action="store_true", help="do not watch the outbox")
    p.add_argument("--no-receive", action="store_true", help="do not take in the inbox")
    p.add_argument("--max-mib", type=int, default=1024, help="largest document (MiB)")
    p.add_argument("--grace", type=float, default=30.0, help="seconds a bad sidecar may settle")
    p.add_argument("--stale", type=float, default=600.0, help="seconds until a half drop fails")
    p.add_argument("--days", type=int, default=14, help="default keep-for days at the gateway")


def settings_from(args: argparse.Namespace) -> BridgeSettings:
    return BridgeSettings(
        root=Path(args.root),
        interval_s=max(0.1, float(args.interval)),
        once=bool(args.once),
        send=not args.no_send,
        receive=not args.no_receive,
        outgoing=OutgoingSettings(
            max_bytes=int(args.max_mib) << 20,
            grace_s=float(args.grace),
            stale_s=float(args.stale),
            default_days=int(args.days),
            categories=vocabulary_terms("categories"),
            purposes=vocabulary_terms("purposes"),
        ),
    )


@contextlib.contextmanager
def _exclusive(paths: Layout) -> Iterator[None]:
    """One bridge per folder: two would send and receipt the same things concurrently."""
    fd = os.open(paths.state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CliFailure("another bridge is running on this folder") from None
        yield
    finally:
        os.close(fd)


async def cmd_bridge(ctx: Context, args: argparse.Namespace) -> None:
    settings = settings_from(args)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    paths = Layout(settings.root)
    paths.create()
    with _exclusive(paths):
        ok = await _serve(ctx, settings, paths)
    if settings.once and not ok:
        raise CliFailure("the bridge round did not complete (see state/health.json)")


async def _serve(ctx: Context, settings: BridgeSettings, paths: Layout) -> bool:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    last_ok: int | None = None
    async with ctx.client() as client:
        outgoing = Outgoing(paths, client, settings.outgoing)
        incoming = Incoming(paths, client)
        while True:
            status, problem = "ok", None
            try:
                await client.sync_directory()
                ctx.home.save_keystore_if_changed()
                if settings.send:
                    await outgoing.run_once(time.time())
                if settings.receive:
                    await incoming.run_once(time.time())
                last_ok = int(time.time())
            except GatewayUnavailable:
                status, problem = "degraded", "gateway_unavailable"
            except Exception as exc:  # one bad round must not end the service
                status, problem = "degraded", str(getattr(exc, "code", type(exc).__name__))
            if problem is not None:
                log.warning("round incomplete: %s", problem)
            layout.write_json(
                paths.health,
                {
                    "v": 1,
                    "status": status,
                    "problem": problem,
                    "pid": os.getpid(),
                    "updated": int(time.time()),
                    "last_ok": last_ok,
                    "outbox_waiting": outgoing.waiting,
                    "failed_drops": outgoing.failed,
                    "drop_errors": outgoing.errors,
                    "pending_receipts": outgoing.pending_receipts,
                    "received": incoming.received,
                    "quarantined": incoming.quarantined,
                    "incoming_errors": incoming.errors,
                },
                private=False,
            )
            if settings.once or stop.is_set():
                return status == "ok"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.interval_s)
            if stop.is_set():
                return True

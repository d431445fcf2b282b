"""APScheduler 3 wiring: triggers the functions in ``gateway.jobs.expiry`` and nothing more.

Started and stopped with the app (a ``cleanup_ctx``) when ``settings.jobs_enabled``.
Each run reads the clock once, passes it as ``now``, and catches and logs its own
error, so one failing run (a database restart, a corrupt row) neither stops the
schedule nor the other jobs. ``max_instances=1`` keeps one run of a job per instance;
runs on several instances at once are the jobs' own business (``gateway.jobs.expiry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from gateway.appkeys import BLOBS, IDENTITY, SESSIONMAKER, SETTINGS
from gateway.jobs import deadlines as jobs_deadlines
from gateway.jobs import expiry as jobs
from gateway.jobs import retention as jobs_retention
from gateway.jobs.webhooks import deliver_webhooks
from gateway.observability.metrics import METRICS

log = logging.getLogger("gateway.jobs.expiry")

Job = Callable[[int], Awaitable[int]]  # now -> how many things it handled


@dataclass(frozen=True)
class Scheduled:
    name: str
    interval_s: float  # 0 disables the job
    run: Job


def failure_name(exc: BaseException) -> str:
    """What may be logged about a failure: its class, and its stable code if it has one."""
    code = getattr(exc, "code", None)
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return f"{name} {code}" if isinstance(code, str) else name


async def run_job(name: str, job: Job, now: int) -> int | None:
    """One run: the count, or None after logging the failure (never raises)."""
    try:
        count = await job(now)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # The exception's class only, no message or traceback: a database error's text
        # carries the statement's parameters (subject references in audit data).
        log.error("job %s failed (%s); the next run will try again", name, failure_name(exc))
        return None
    if count:
        log.info("job %s handled %d", name, count)
    return count


class JobRunner:
    """An AsyncIOScheduler plus the runs in flight, so shutdown can wait for them."""

    def __init__(self, table: list[Scheduled]) -> None:
        self.scheduler = AsyncIOScheduler(timezone=datetime.UTC)
        self._running: set[asyncio.Task[Any]] = set()
        for item in table:
            if item.interval_s > 0:
                self.scheduler.add_job(
                    self._tick,
                    IntervalTrigger(seconds=item.interval_s),
                    args=(item,),
                    id=item.name,
                    max_instances=1,
                    coalesce=True,  # after a pause, one catch-up run, not a burst
                    misfire_grace_time=None,
                )

    async def _tick(self, item: Scheduled) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await run_job(item.name, item.run, int(time.time()))
        finally:
            if task is not None:
                self._running.discard(task)

    def start(self) -> None:
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop triggering, then cancel and await runs in flight (before the engine
        closes under them)."""
        self.scheduler.shutdown(wait=False)
        running = list(self._running)
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def job_table(app: web.Application) -> list[Scheduled]:
    settings, sessionmaker, identity = app[SETTINGS], app[SESSIONMAKER], app[IDENTITY]
    blobs = app[BLOBS]

    async def expire(now: int) -> int:
        return await jobs.expire_messages(sessionmaker, blobs, now=now)

    async def checkpoint(now: int) -> int:
        return await jobs.sign_audit_checkpoint(sessionmaker, identity, now=now)

    async def nonces(now: int) -> int:
        return await jobs.purge_nonces(sessionmaker, clock_skew_s=settings.clock_skew_s, now=now)

    async def sweep(now: int) -> int:
        return await blobs.sweep(sessionmaker, now=now)

    async def retention(now: int) -> int:
        return await jobs_retention.apply_retention(
            sessionmaker,
            now=now,
            retention_days=settings.retention_days,
            webhook_retention_days=settings.webhook_retention_days,
        )

    async def deliver(now: int) -> int:
        return await deliver_webhooks(
            sessionmaker,
            now=now,
            key=identity.signing_key,
            timeout_s=settings.webhook_timeout_s,
            allow_loopback=settings.webhook_allow_loopback_http,
        )

    return [
        Scheduled("expire_messages", settings.expire_interval_s, expire),
        Scheduled("sign_audit_checkpoint", settings.audit_checkpoint_interval_s, checkpoint),
        Scheduled("purge_nonces", settings.nonce_purge_interval_s, nonces),
        Scheduled("sweep_orphan_blobs", settings.blob_sweep_interval_s, sweep),
        Scheduled("apply_retention", settings.retention_interval_s, retention),
        Scheduled("deliver_webhooks", settings.webhook_interval_s, deliver),
        # Escalation of overdue handovers and consent-ending reminders.
        *(Scheduled(*job) for job in jobs_deadlines.deadline_jobs(app)),
    ]


async def scheduler_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the database ctx): the periodic jobs for the app's lifetime."""
    if not app[SETTINGS].jobs_enabled:
        yield
        return
    metrics = app[METRICS]
    runner = JobRunner([replace(j, run=metrics.instrument(j.name, j.run)) for j in job_table(app)])
    runner.start()
    try:
        yield
    finally:
        await runner.stop()

"""Relay benchmark: full handover cycles through the real gateway vs a bare relay.

One cycle = send → push → fetch → receipt:
- gateway: ``PUT /v1/messages/{id}`` (signed, streamed envelope: directory lookup,
  signature over the whole envelope, recipient checks, consent decision, audit entry,
  event) → the recipient device's WebSocket ``/v1/events`` delivers ``inbox.new`` →
  ``GET /v1/messages/{id}/envelope`` (marks delivered) → ``POST .../receipt`` (a signed
  receipt; the gateway verifies it, deletes the content, audits, emits events);
- bare (``bench/bare_relay.py``, the floor): PUT → WebSocket notify → GET → DELETE,
  with the same durability (fsync'd blob file, SQLite WAL; with ``--store postgresql``
  asyncpg directly on the gateway's cluster, the body in a ``bytea`` row) and nothing else.

Measured: everything on the server side, and on the client side the SDK transport
(``clients.sdk.transport``: RFC 9421 request signing, one fresh nonce per request) plus the
receipt's Ed25519 signature. Not measured: sealing (envelopes are sealed before the
clock starts) and opening (the fetched envelope is checked for length, not decrypted);
``python -m bench.run envelope`` measures those. Body 2 KiB, one recipient device.

Each of c workers has its own sender (``so-nordost/s<i>``) and recipient device
(``sav/r<i>``, with one push WebSocket; at level c exactly c sockets are open), all
under one consent. The full run adds ``gateway["1_idle63"]``: c=1 while 63 other recipient
devices hold idle push sockets (what idle connected officers cost a busy one). The gateway runs as
``stafett-gateway serve`` in a child process on SQLite with the per-device rate limit
lifted (the bench measures throughput, not the limiter); the bare relay in another;
the clients of both in this process. Levels alternate bare/gateway so both see the same
machine state. Figures: cycles/s, p50/p99 cycle latency and server CPU per cycle per
concurrency; per level ``ratio`` (gateway ÷ bare cycles/s), ``p99_ratio`` and
``cpu_ratio`` (gateway ÷ bare server CPU ms per cycle). The goals (issue 13, in ``goal``;
``goal_met`` = all of them): ``ratio_c16`` ≥ 0.5, ``p99_ratio_c16`` ≤ 3, ``ratio`` at
c=1 and c=64 ≥ 0.4, ``cpu_ratio_c16`` ≤ 3.

After the levels, ``correctness`` (``bench/_relay_check.py``): every message the gateway
took is handed over (as many as cycles done + warm-ups), no content is left in its blob
store, and its audit chain verifies. If not, the run prints its figures and exits 1.

``--store postgresql`` runs the gateway on a throwaway PostgreSQL cluster with the
PostgreSQL blob store, and the floor on the same cluster (database ``bare``, asyncpg
directly), so the ratios compare like for like. ``--instances 2`` (PostgreSQL only)
runs two ``serve`` processes of one gateway (the second given the key by
``identity export`` / ``init --from``): worker w sends through instance w mod 2 and
its recipient holds its push socket, fetches and receipts on the other, so every cycle
crosses instances (the push arrives through the events poll,
``events_poll_interval_s`` = 0.05 here). Server CPU sums the gateway processes (the
floor's: its one process); PostgreSQL's own CPU is not counted on either side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp

from bench import _gateway as g
from bench import _postgres, _relay_check
from clients.sdk.transport import Signer, Transport
from keys.crypto.keypairs import DeviceKeyPair, SigningKey
from keys.protocol.receipt import make_receipt

BENCH_DIR = Path(__file__).resolve().parent
LEVELS = (1, 16, 64)
BODY_BYTES = 2048
WAIT_S = 120.0
GATEWAY_SETTINGS = g.UNLIMITED
# Issue 13's performance goals; ``goal_met`` is all of them.
GOAL = {
    "ratio_c16_min": 0.5,
    "p99_ratio_c16_max": 3.0,
    "ratio_c1_c64_min": 0.4,
    "cpu_ratio_c16_max": 3.0,
}
MEASURED = (
    "server: everything; client: SDK transport (RFC 9421 signing) + receipt signature; "
    "not measured: envelope seal (pre-sealed) and open (fetched, not decrypted)"
)


def duration_s(quick: bool) -> float:
    """How long each (side, concurrency) level starts new cycles."""
    return 3.0 if quick else 20.0


def pool_per_worker(c: int, quick: bool, scale: int) -> int:
    """Items prepared per worker (for the gateway: sealed before the clock starts).

    Sized for ~160 cycles/s × ``scale`` over the quick duration; a worker that runs
    out stops early and the level is flagged ``pool_exhausted``.
    """
    total = (640 if c > 1 else 320) * scale * (1 if quick else 5)
    return max(4, total // c)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Waiters:
    """Futures for "the recipient was told about message X", keyed by message id.

    Registered before the send: the push may arrive before the send's answer does.
    """

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[None]] = {}

    def expect(self, message_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures[message_id] = future
        return future

    def resolve(self, message_id: str) -> None:
        future = self._futures.pop(message_id, None)
        if future is not None and not future.done():
            future.set_result(None)


async def read_pushes(
    ws: aiohttp.ClientWebSocketResponse, waiters: Waiters, pick: Callable[[Any], str | None]
) -> None:
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        message_id = pick(json.loads(msg.data))
        if message_id is not None:
            waiters.resolve(message_id)


class Side:
    """One relay under test: ``prepare`` builds the items, ``cycle`` runs one."""

    name = "side"
    pid = 0
    pool_scale = 1

    def __init__(self, waiters: Waiters) -> None:
        self.waiters = waiters
        self._open: list[tuple[aiohttp.ClientWebSocketResponse, asyncio.Task[None]]] = []

    def prepare(self, c: int, n: int) -> list[list[Any]]:
        raise NotImplementedError

    async def cycle(self, worker: int, item: Any) -> None:
        raise NotImplementedError

    async def open_socket(self, worker: int) -> aiohttp.ClientWebSocketResponse:
        raise NotImplementedError

    def pick(self, frame: Any) -> str | None:
        raise NotImplementedError

    async def connect(self, c: int) -> None:
        """Push sockets for workers 0..c-1, as each connected officer has one.

        Levels run in ascending c, so this only adds sockets: at level c exactly c are
        open. They are closed once, at the end — closing them between levels made the
        gateway wedge (``database is locked``; see docs/benchmarks.md).
        """
        for w in range(len(self._open), c):
            ws = await self.open_socket(w)
            self._open.append((ws, asyncio.create_task(read_pushes(ws, self.waiters, self.pick))))

    async def disconnect(self) -> None:
        for ws, task in self._open:
            await ws.close()
            task.cancel()
        self._open.clear()


class GatewaySide(Side):
    name = "gateway"

    def __init__(
        self, dep: g.Deployment, waiters: Waiters, instances: Sequence[g.GatewayProcess] = ()
    ) -> None:
        super().__init__(waiters)
        self.dep = dep
        self.instances = list(instances) or [dep.gw]
        self.pid = dep.gw.pid
        self.pids = [gw.pid for gw in self.instances]
        self.envelope_bytes = 0
        self._transports: dict[tuple[str, int], Transport] = {}

    def via(self, pair: DeviceKeyPair, worker: int, *, recipient: bool) -> Transport:
        """The transport of ``pair`` on the instance this worker's side uses: the
        sender on instance w mod n, the recipient on the next one."""
        index = (worker + recipient) % len(self.instances)
        if index == 0:
            return self.dep.transport(pair)
        key = (str(pair.kid), index)
        if key not in self._transports:
            self._transports[key] = Transport(
                self.instances[index].url,
                Signer(str(pair.kid), pair.signing_key),
                session=self.dep.http,
            )
        return self._transports[key]

    def prepare(self, c: int, n: int) -> list[list[Any]]:
        body = os.urandom(BODY_BYTES)
        items = [
            [
                g.seal_one(self.dep, self.dep.senders[w], self.dep.recipients[w], body)
                for _ in range(n)
            ]
            for w in range(c)
        ]
        self.envelope_bytes = len(items[0][0].data)
        return items

    async def open_socket(self, worker: int) -> aiohttp.ClientWebSocketResponse:
        transport = self.via(self.dep.recipients[worker], worker, recipient=True)
        return await transport.websocket("/v1/events", {"after": 0})

    def pick(self, frame: Any) -> str | None:
        if isinstance(frame, dict) and frame.get("kind") == "inbox.new":
            return str(frame["message_id"])
        return None

    async def cycle(self, worker: int, item: g.Sealed) -> None:
        sender, recipient = self.dep.senders[worker], self.dep.recipients[worker]
        pushed = self.waiters.expect(item.message_id)
        await g.put_envelope(self.dep, sender, item, self.via(sender, worker, recipient=False))
        await asyncio.wait_for(pushed, WAIT_S)
        inbox = self.via(recipient, worker, recipient=True)
        out = io.BytesIO()
        got = await inbox.download(f"/v1/messages/{item.message_id}/envelope", out)
        if got != len(item.data):
            raise RuntimeError("fetched envelope has the wrong length")
        receipt = make_receipt(
            message_id=item.message_id,
            header_hash=item.header_hash,
            recipient=recipient.kid,
            status="accepted",
            reason=None,
            received_at=int(time.time()),
            key=recipient.signing_key,
        )
        await inbox.request("POST", f"/v1/messages/{item.message_id}/receipt", json_body=receipt)


class BareItem(NamedTuple):
    # A NamedTuple: light, and the floor's item carries no behaviour.
    message_id: str
    data: bytes


class BareSide(Side):
    name = "bare"
    pool_scale = 4  # unsealed random bytes: cheap to prepare, and the bare side is fast

    def __init__(self, url: str, http: aiohttp.ClientSession, waiters: Waiters, pid: int) -> None:
        super().__init__(waiters)
        self.url, self.http, self.pid = url, http, pid
        self.size = BODY_BYTES

    async def open_socket(self, worker: int) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(f"{self.url}/ws", params={"me": f"r{worker}"})

    def pick(self, frame: Any) -> str | None:
        return str(frame["id"]) if isinstance(frame, dict) and "id" in frame else None

    def prepare(self, c: int, n: int) -> list[list[Any]]:
        return [
            [BareItem(str(uuid.uuid4()), os.urandom(self.size)) for _ in range(n)] for _ in range(c)
        ]

    async def cycle(self, worker: int, item: BareItem) -> None:
        url = f"{self.url}/m/{item.message_id}"
        pushed = self.waiters.expect(item.message_id)
        async with self.http.put(url, params={"to": f"r{worker}"}, data=item.data) as resp:
            if resp.status != 201:
                raise RuntimeError(f"bare PUT: HTTP {resp.status}")
        await asyncio.wait_for(pushed, WAIT_S)
        async with self.http.get(url) as resp:
            if len(await resp.read()) != len(item.data):
                raise RuntimeError("bare GET returned the wrong length")
        async with self.http.delete(url) as resp:
            if resp.status != 200:
                raise RuntimeError(f"bare DELETE: HTTP {resp.status}")


def server_cpu(side: Side) -> float:
    return sum(cpu_seconds(pid) for pid in getattr(side, "pids", [side.pid]))


async def measure(side: Side, c: int, quick: bool) -> dict[str, Any]:
    """c workers start cycles for ``duration_s``; cycles in flight at the deadline finish
    and count. One untimed warm-up cycle first (connections, caches)."""
    items = side.prepare(c, pool_per_worker(c, quick, side.pool_scale) + 1)
    await side.cycle(0, items[0].pop())
    latencies: list[float] = []
    exhausted = False
    cpu_server, cpu_client = server_cpu(side), cpu_seconds(os.getpid())
    started = time.perf_counter()
    deadline = started + duration_s(quick)

    async def worker(w: int) -> None:
        nonlocal exhausted
        for item in items[w]:
            if time.perf_counter() >= deadline:
                return
            start = time.perf_counter()
            await side.cycle(w, item)
            latencies.append(time.perf_counter() - start)
        exhausted = True

    await asyncio.gather(*(worker(w) for w in range(c)))
    elapsed = time.perf_counter() - started
    cycles = len(latencies)
    return {
        "cycles": cycles,
        "cycles_per_s": round(cycles / elapsed, 1),
        "p50_ms": round(g.percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(g.percentile(latencies, 99) * 1000, 2),
        "server_cpu_ms_per_cycle": round((server_cpu(side) - cpu_server) / cycles * 1000, 2),
        "client_cpu_ms_per_cycle": round(
            (cpu_seconds(os.getpid()) - cpu_client) / cycles * 1000, 2
        ),
        "pool_exhausted": exhausted,
    }


def start_bare(root: Path, log: Path, dsn: str = "") -> tuple[subprocess.Popen[bytes], str]:
    """Blocking: spawn ``bare_relay.py serve`` (on PostgreSQL at ``dsn`` if given) and
    read its port line."""
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "bare_relay.py"), "serve", str(root)]
            + ([dsn] if dsn else []),
            stdout=subprocess.PIPE,
            stderr=log_file,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the bare relay did not start; see {log}")
    return proc, f"http://127.0.0.1:{json.loads(line)['port']}"


def print_log_tails(tmp: Path) -> None:
    """On failure: the servers' logs go away with the temp dir, so show their ends."""
    for log_file in sorted(tmp.glob("*.log")):
        tail = log_file.read_text(errors="replace")[-3000:]
        print(f"--- tail of {log_file.name} ---\n{tail}", file=sys.stderr)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _bare_side(
    tmp: Path,
    http: aiohttp.ClientSession,
    n_pairs: int,
    cleanup: list[Callable[[], object]],
    dsn: str = "",
) -> BareSide:
    proc, url = await asyncio.to_thread(start_bare, tmp / "bare", tmp / "bare.log", dsn)
    cleanup.append(lambda: stop(proc))
    side = BareSide(url, http, Waiters(), proc.pid)
    if dsn:
        # The asyncpg floor ran ~1 000 cycles/s at c=16 and exhausted the SQLite
        # floor's pool; its server process does little (PostgreSQL does the rest).
        side.pool_scale = 10
    return side


def gateway_settings(
    store: str, instances: int, cleanup: list[Callable[[], object]]
) -> dict[str, str]:
    settings = dict(GATEWAY_SETTINGS)
    if store == "postgresql":
        stack = contextlib.ExitStack()
        cleanup.append(stack.close)
        settings.update(database_url=stack.enter_context(_postgres.cluster()), blob_store=store)
    if instances > 1:
        settings["events_poll_interval_s"] = "0.05"
    return settings


async def _gateway_side(
    tmp: Path,
    http: aiohttp.ClientSession,
    n_pairs: int,
    cleanup: list[Callable[[], object]],
    settings: dict[str, str] = GATEWAY_SETTINGS,
    instances: int = 1,
) -> GatewaySide:
    admin_key = SigningKey.generate()
    dirs = [tmp / f"gateway{i or ''}" for i in range(instances)]
    directory = await asyncio.to_thread(g.init_gateway, dirs[0], admin_key, **settings)
    for data_dir in dirs[1:]:
        await asyncio.to_thread(g.share_identity, dirs[0], data_dir, **settings)
    gws = []
    for i, data_dir in enumerate(dirs):
        gw = await g.start_gateway(data_dir, admin_key, tmp / f"gateway{i or ''}.log", **settings)
        cleanup.append(gw.stop)
        gws.append(gw)
    dep = await g.deploy(gws[0], admin_key, directory, n_pairs, http)
    return GatewaySide(dep, Waiters(), gws)


async def run_levels(
    quick: bool,
    sides: Sequence[str],
    levels: Sequence[int] = LEVELS,
    store: str = "sqlite",
    instances: int = 1,
) -> dict[str, Any]:
    log = sys.stderr
    n_pairs = max(levels)
    cleanup: list[Callable[[], object]] = []
    results: dict[str, dict[str, Any]] = {name: {} for name in sides}
    extra: dict[str, Any] = {}
    gateway_settings_used: dict[str, str] = dict(GATEWAY_SETTINGS)
    connector = aiohttp.TCPConnector(limit=0)
    with tempfile.TemporaryDirectory(prefix="stafett-bench-relay-") as tmp_name:
        tmp = Path(tmp_name)
        async with aiohttp.ClientSession(connector=connector) as http:
            try:
                built: dict[str, Side] = {}
                # The cluster first: on PostgreSQL the floor runs on it too.
                settings = gateway_settings(store, instances, cleanup)
                database_url = settings.get("database_url")
                if "bare" in sides:
                    dsn = _postgres.asyncpg_dsn(database_url, "bare") if database_url else ""
                    built["bare"] = await _bare_side(tmp, http, n_pairs, cleanup, dsn)
                    cleanup.append(built["bare"].disconnect)
                if "gateway" in sides:
                    gateway_settings_used = settings
                    gateway = await _gateway_side(tmp, http, n_pairs, cleanup, settings, instances)
                    built["gateway"] = gateway
                    cleanup.append(gateway.disconnect)
                print(f"relay bench: set up {', '.join(built)} ({n_pairs} device pairs)", file=log)
                for c in levels:
                    for name in sides:
                        side = built[name]
                        if isinstance(side, BareSide) and "gateway" in built:
                            side.size = max(BODY_BYTES, gateway.envelope_bytes)
                        await side.connect(c)
                        figures = await measure(side, c, quick)
                        results[name][str(c)] = figures
                        print(
                            f"  {name:7} c={c:<3} {figures['cycles_per_s']:8.1f} cycles/s  "
                            f"p50 {figures['p50_ms']:7.2f} ms  p99 {figures['p99_ms']:7.2f} ms",
                            file=log,
                        )
                if "gateway" in built and not quick and max(levels) > 1:
                    await gateway.connect(max(levels))
                    figures = await measure(gateway, 1, quick)
                    results["gateway"][f"1_idle{max(levels) - 1}"] = figures
                    print(f"  gateway c=1 with idle sockets: {figures}", file=log)
                if "gateway" in built:
                    extra["envelope_bytes"] = gateway.envelope_bytes
                    # One untimed warm-up cycle per measured level besides the counted ones.
                    done = sum(f["cycles"] + 1 for f in results["gateway"].values())
                    dirs = [gw.data_dir for gw in gateway.instances]
                    extra["correctness"] = await _relay_check.check(
                        gateway.dep, dirs, database_url, done
                    )
                    print(f"  correctness: {extra['correctness']}", file=log)
            except BaseException:
                print_log_tails(tmp)
                raise
            finally:
                for step in reversed(cleanup):
                    outcome = step()
                    if inspect.isawaitable(outcome):
                        await outcome
    out: dict[str, Any] = {
        "measured": MEASURED,
        "body_bytes": BODY_BYTES,
        "levels": list(levels),
        **{name: results[name] for name in sides},
        **extra,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    if "gateway" in sides and "bare" in sides:
        out.update(ratios(results["gateway"], results["bare"]))
        out["floor"] = "asyncpg" if store == "postgresql" else "sqlite"
        out["gateway_settings"] = {
            k: v for k, v in gateway_settings_used.items() if k != "database_url"
        }
    out["store"], out["instances"] = store, instances
    if not extra.get("correctness", {}).get("ok", True):
        out["failed"] = ["correctness"]  # bench.run exits 1
    return out


def ratios(gw: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    """Gateway ÷ floor per level, and the goals (:data:`GOAL`) where their levels ran."""
    both = [k for k in gw if k in bare]
    out: dict[str, Any] = {
        "ratio": {k: round(gw[k]["cycles_per_s"] / bare[k]["cycles_per_s"], 3) for k in both},
        "p99_ratio": {k: round(gw[k]["p99_ms"] / bare[k]["p99_ms"], 2) for k in both},
        "cpu_ratio": {
            k: round(gw[k]["server_cpu_ms_per_cycle"] / bare[k]["server_cpu_ms_per_cycle"], 2)
            for k in both
        },
    }
    if not {"1", "16", "64"} <= set(both):
        return out
    out["ratio_c16"] = out["ratio"]["16"]
    out["p99_ratio_c16"] = out["p99_ratio"]["16"]
    out["cpu_ratio_c16"] = out["cpu_ratio"]["16"]
    out["goal"] = dict(GOAL)
    out["goal_met"] = (
        out["ratio_c16"] >= GOAL["ratio_c16_min"]
        and out["p99_ratio_c16"] <= GOAL["p99_ratio_c16_max"]
        and min(out["ratio"]["1"], out["ratio"]["64"]) >= GOAL["ratio_c1_c64_min"]
        and out["cpu_ratio_c16"] <= GOAL["cpu_ratio_c16_max"]
    )
    return out


def run(quick: bool, argv: Sequence[str] = ()) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.run relay")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--instances", type=int, choices=(1, 2, 3, 4), default=1)
    args = parser.parse_args(list(argv))
    if args.instances > 1 and args.store != "postgresql":
        parser.error("--instances > 1 needs --store postgresql (instances share the database)")
    return asyncio.run(
        run_levels(quick, ("bare", "gateway"), store=args.store, instances=args.instances)
    )


if __name__ == "__main__":
    raise SystemExit(
        "use: python -m bench.run relay [--quick] [--store postgresql] [--instances 2]"
    )

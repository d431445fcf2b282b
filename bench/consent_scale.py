"""Consent scale: send latency with 10^6 stored consents ÷ with 10^3 (goal ≤ 1.2).

Two real gateways (``stafett-gateway serve`` child processes, SQLite) run side by side:
one whose database holds ``n_small`` filler consents, one with ``n_large``. Fillers are
bulk-inserted through the gateway's own models (``ConsentRow`` / ``ConsentParty``
tables, SQLAlchemy Core executemany) after ``migrate`` and before ``serve`` — each a
realistic row (its record JSON is a real signed record's size, two party units, a
random subject reference and id, so the B-trees are as deep and as random as real
ones). Then each gateway gets its directory and one consent through the real API, and
the bench sends pre-sealed 2 KiB envelopes under that consent, alternating between the
two gateways so machine noise hits both alike.

Measured: the latency of ``PUT /v1/messages/{id}`` (auth, envelope signature check,
recipient checks, the consent lookup + decision, the accept transaction with audit and
event), c=1, as seen by the SDK transport. Also ``GET /v1/consents/{id}`` (a lookup
with little else around it) and SQLite's query plans for the consent lookups.

Quick mode tries 10^6 first; when the bulk insert overruns its time budget it stops
after the current batch and ``n_large`` in the JSON says how many were stored.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import Table, create_engine, text

from bench import _gateway as g
from gateway.db.models import ConsentParty, ConsentRow
from keys.crypto.canonical import canonical_json
from keys.crypto.keypairs import DeviceKeyPair, KeyId, SigningKey

N_SMALL = 1_000
N_LARGE = 1_000_000
BATCH = 50_000
BODY_BYTES = 2048


def insert_budget_s(quick: bool) -> float:
    """Time allowed for the large bulk insert before ``n_large`` is capped."""
    return 20.0 if quick else 900.0


def sends(quick: bool) -> int:
    """Timed sends per gateway (after a few untimed warm-up sends)."""
    return 100 if quick else 1000


def _filler_json(consent_id: str, subject_ref: str, template: str) -> str:
    # Same length and shape as a real signed record; the content is never parsed unless
    # that consent is looked up, and fillers never are.
    return template.replace("@ID@", consent_id).replace("@SUBJ@", subject_ref)


def bulk_insert(db_path: Path, n: int, budget_s: float) -> tuple[int, float]:
    """Insert up to ``n`` filler consents; stops early when the budget runs out.

    Returns (rows inserted, seconds). Blocking; run it before the gateway serves.
    """
    real = g.consent_record(DeviceKeyPair.generate(KeyId.parse(f"{g.SENDER_UNIT}/filler/1")))
    template = (
        canonical_json(real)
        .decode("utf-8")
        .replace(real["consent_id"], "@ID@")
        .replace(real["subject_ref"], "@SUBJ@")
    )
    engine = create_engine(f"sqlite:///{db_path}")
    consents, parties = ConsentRow.__table__, ConsentParty.__table__
    assert isinstance(consents, Table)
    assert isinstance(parties, Table)
    # The models' own INSERT statements, compiled once; rows go to the driver's
    # executemany as tuples (SQLAlchemy's per-row processing would triple the time).
    consent_cols = [c.name for c in consents.columns]
    nullable = {c.name for c in consents.columns if c.nullable}
    insert_consent = str(consents.insert().compile(dialect=engine.dialect))
    insert_party = str(parties.insert().compile(dialect=engine.dialect))
    party_cols = [c.name for c in parties.columns]
    if party_cols != ["consent_id", "unit"]:
        raise RuntimeError(f"consent_parties columns changed: {party_cols}")
    now = int(time.time())
    fixed = {
        "version": 1,
        "recorded_by": f"{g.SENDER_UNIT}/filler/1",
        "valid_from": now - 3600,
        "valid_until": now + 90 * g.DAY,
        "withdrawn_at": None,
        "withdrawal_reason": None,
        "created_at": now,
    }
    unknown = set(consent_cols) - set(fixed) - {"id", "subject_ref", "record_json"}
    if unknown - nullable:
        raise RuntimeError(f"consents has new required columns: {sorted(unknown)}")
    fixed.update(dict.fromkeys(unknown))  # newer nullable columns: NULL, as for a new row
    done = 0
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            # Load-time settings only (the gateway reopens with its own pragmas).
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            # Random-key inserts into two B-trees thrash the default 2 MB page cache.
            conn.exec_driver_sql("PRAGMA cache_size=-262144")
            conn.commit()  # end the autobegun transaction; one per batch below
            while done < n:
                size = min(BATCH, n - done)
                rows, party_rows = [], []
                for _ in range(size):
                    cid, subject = str(uuid.uuid4()), os.urandom(32).hex()
                    values = {
                        **fixed,
                        "id": cid,
                        "subject_ref": subject,
                        "record_json": _filler_json(cid, subject, template),
                    }
                    rows.append(tuple(values[c] for c in consent_cols))
                    party_rows.append((cid, g.SENDER_UNIT))
                    party_rows.append((cid, g.RECIPIENT_UNIT))
                conn.exec_driver_sql(insert_consent, rows)
                conn.exec_driver_sql(insert_party, party_rows)
                conn.commit()
                done += size
                if time.perf_counter() - started > budget_s:
                    break  # n_large in the JSON says how many made it
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.commit()
    finally:
        engine.dispose()
    return done, time.perf_counter() - started


def count_consents(db_path: Path) -> int:
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM consents")).scalar_one())
    finally:
        engine.dispose()


def lookup_plans(db_path: Path) -> list[str]:
    """SQLite's plan for the two lookups a send makes (consent_store.get / parties)."""
    engine = create_engine(f"sqlite:///{db_path}")
    plans: list[str] = []
    try:
        with engine.connect() as conn:
            for sql in (
                "SELECT * FROM consents WHERE id = 'x'",
                "SELECT unit FROM consent_parties WHERE consent_id = 'x'",
            ):
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"):
                    plans.append(str(row[-1]))
    finally:
        engine.dispose()
    return plans


async def _prepare(
    tmp: Path,
    name: str,
    n: int,
    budget_s: float,
    http: aiohttp.ClientSession,
    running: list[g.GatewayProcess],
) -> tuple[g.Deployment, dict[str, Any]]:
    admin_key = SigningKey.generate()
    data_dir = tmp / name
    directory = await asyncio.to_thread(g.init_gateway, data_dir, admin_key, **g.UNLIMITED)
    inserted, seconds = await asyncio.to_thread(
        bulk_insert, data_dir / "gateway.sqlite3", n, budget_s
    )
    print(f"  {name}: {inserted} filler consents in {seconds:.1f} s", file=sys.stderr)
    gw = await g.start_gateway(data_dir, admin_key, tmp / f"{name}.log", **g.UNLIMITED)
    running.append(gw)  # stopped by the caller whatever happens next
    dep = await g.deploy(gw, admin_key, directory, 1, http)
    facts = {"fillers": inserted, "insert_s": round(seconds, 1)}
    return dep, facts


async def _timed_send(dep: g.Deployment, item: g.Sealed) -> float:
    start = time.perf_counter()
    status = await g.put_envelope(dep, dep.senders[0], item)
    elapsed = time.perf_counter() - start
    if status != 201:
        raise RuntimeError(f"expected a new message, got HTTP {status}")
    return elapsed


async def _timed_lookup(dep: g.Deployment) -> float:
    transport = dep.transport(dep.senders[0])
    start = time.perf_counter()
    await transport.request("GET", f"/v1/consents/{dep.consent_id}")
    return time.perf_counter() - start


async def _run(quick: bool) -> dict[str, Any]:
    log = sys.stderr
    n_sends = sends(quick)
    with tempfile.TemporaryDirectory(prefix="stafett-bench-consents-") as tmp_name:
        tmp = Path(tmp_name)
        async with aiohttp.ClientSession() as http:
            running: list[g.GatewayProcess] = []
            try:
                print("consent_scale bench: preparing databases", file=log)
                # Concurrently: the small one is ready long before the large insert ends.
                (small, _), (large, large_facts) = await asyncio.gather(
                    _prepare(tmp, "small", N_SMALL, 60.0, http, running),
                    _prepare(tmp, "large", N_LARGE, insert_budget_s(quick), http, running),
                )
                deps = {"small": small, "large": large}
                body = os.urandom(BODY_BYTES)
                items = {
                    name: [
                        g.seal_one(dep, dep.senders[0], dep.recipients[0], body)
                        for _ in range(n_sends + 10)
                    ]
                    for name, dep in deps.items()
                }
                send_s: dict[str, list[float]] = {"small": [], "large": []}
                lookup_s: dict[str, list[float]] = {"small": [], "large": []}
                for i in range(n_sends + 10):
                    # Alternate (and swap the order each round): drift hits both alike.
                    order = ("small", "large") if i % 2 == 0 else ("large", "small")
                    for name in order:
                        sent = await _timed_send(deps[name], items[name][i])
                        looked = await _timed_lookup(deps[name])
                        if i >= 10:  # the first ten warm caches and connections
                            send_s[name].append(sent)
                            lookup_s[name].append(looked)
                stored = {
                    name: await asyncio.to_thread(count_consents, dep.gw.db_path)
                    for name, dep in deps.items()
                }
                plans = await asyncio.to_thread(lookup_plans, large.gw.db_path)
            finally:
                for gw in running:
                    gw.stop()

    def ms(values: list[float], q: float) -> float:
        return round(g.percentile(values, q) * 1000, 2)

    median = {k: statistics.median(v) for k, v in send_s.items()}
    lookup_median = {k: statistics.median(v) for k, v in lookup_s.items()}
    ratio = median["large"] / median["small"]
    indexed = all("USING" in p and "INDEX" in p for p in plans)
    return {
        "measured": "PUT /v1/messages (auth, envelope verify, recipients, consent lookup + "
        "decision, accept transaction with audit + event), c=1, pre-sealed 2 KiB; "
        "fillers bulk-inserted through the gateway's models before serve",
        "n_small": stored["small"],
        "n_large": stored["large"],
        "n_large_target": N_LARGE,
        "insert_s_large": large_facts["insert_s"],
        "sends_per_gateway": len(send_s["small"]),
        "send_p50_ms_small": ms(send_s["small"], 50),
        "send_p50_ms_large": ms(send_s["large"], 50),
        "send_p99_ms_small": ms(send_s["small"], 99),
        "send_p99_ms_large": ms(send_s["large"], 99),
        "ratio": round(ratio, 3),
        "goal_ratio_max": 1.2,
        "goal_met": ratio <= 1.2,
        "lookup_p50_ms_small": round(lookup_median["small"] * 1000, 2),
        "lookup_p50_ms_large": round(lookup_median["large"] * 1000, 2),
        "lookup_ratio": round(lookup_median["large"] / lookup_median["small"], 3),
        "consent_lookup_plans": plans,
        "consent_lookup_indexed": indexed,
        "gateway_settings": g.UNLIMITED,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def run(quick: bool) -> dict[str, Any]:
    return asyncio.run(_run(quick))


if __name__ == "__main__":
    raise SystemExit("use: python -m bench.run consent_scale [--quick]")

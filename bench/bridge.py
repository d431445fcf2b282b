"""Bridge benchmark: drops/s from the outbox folder to the receipt on the other side,
against the SDK sending and receiving the same documents directly; and the bridge's
peak RSS with one large document.

Set-up: a real gateway process (``bench/_gateway.py``), a sending device
(``so-nordost/s0``) and a receiving device (``sav/r0``), one consent. Each device gets a
state directory as ``stafett init`` leaves it (keystore + config.json).

- bridge: both bridges run as services (``stafett bridge --interval 0.2``, started
  before the clock); N drops (64 KiB document + sidecar) are written into the outbox;
  the clock stops when the receiving bridge's journal shows N receipts posted.
  Measured: everything — completeness check (SHA-256), bundle, seal, upload, directory
  syncs, inbox polling, fetch, decrypt, unpack, handover record, fsyncs, receipt.
- sdk: the same N documents, ``StafettClient.send`` (seal + upload) then ``fetch`` (download,
  verify, decrypt) + ``ack`` for each, in this process. No folders, no fsync of output.
- rss: ``stafett bridge --once`` with one document of 1 GiB (``--quick``: 128 MiB),
  sender then receiver, each as its own process; peak RSS is the process's own
  ``VmHWM`` (see ``_REPORT``), beside the floor: a bare interpreter and one that
  only imports the CLI.

Figures: ``bridge_drops_per_s``, ``sdk_drops_per_s``, ``ratio`` (goal ≥ 0.8),
``rss_mib_send`` / ``rss_mib_receive`` (goal ≤ 64 MiB).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench import _gateway as g
from clients.sdk import StafettClient
from keys.crypto.keypairs import DeviceKeyPair, SigningKey
from keys.crypto.keystore import KdfCost, Keystore, save_keystore

REPO = Path(__file__).resolve().parents[1]
PASS = "bench bridge passphrase"  # noqa: S105  # throwaway temp keystores
DOC_BYTES = 64 << 10
GOAL_RATIO, GOAL_RSS_MIB = 0.8, 64


def _home(root: Path, pair: DeviceKeyPair, dep: g.Deployment) -> Path:
    root.mkdir(parents=True)
    store = Keystore(
        owner=str(pair.kid.device),
        keypairs={pair.kid.version: pair},
        pinned_admins={str(g.ROOT_ADMIN): dep.admin_key.verify_key},
    )
    save_keystore(root / "keys.crypto.keystore", store, PASS, cost=KdfCost.TEST)
    config = {"v": 1, "device": str(pair.kid.device), "gateway": dep.gw.url}
    (root / "config.json").write_text(json.dumps(config))
    return root


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAFETT_")}
    env.update(STAFETT_PASSPHRASE=PASS, STAFETT_KDF_COST="test")
    return env


def _argv(home: Path, root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "clients.cli.main",
        "--home",
        str(home),
        "bridge",
        "--root",
        str(root),
        *extra,
    ]


def _drop(outbox: Path, stem: str, content: bytes | Path, consent_id: str) -> None:
    outbox.mkdir(parents=True, exist_ok=True)
    doc = outbox / f"{stem}.pdf"
    if isinstance(content, bytes):
        doc.write_bytes(content)
        size, sha = len(content), hashlib.sha256(content).hexdigest()
    else:
        os.rename(content, doc)
        size, sha = doc.stat().st_size, _sha256(doc)
    sidecar = {
        "v": 1,
        "to": {"unit": g.RECIPIENT_UNIT},
        "category": g.CATEGORY,
        "purpose": g.PURPOSE,
        "consent_id": consent_id,
        "subject": {"subject_ref": g.SUBJECT},
        "documents": [{"name": doc.name, "size": size, "sha256": sha}],
    }
    tmp = outbox / f".{stem}.tmp"
    tmp.write_text(json.dumps(sidecar))
    os.rename(tmp, outbox / f"{stem}.stafett.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _until(condition: Callable[[], bool]) -> None:
    """Poll what other processes change on disk (no event to wait on), up to 10 min."""
    for _ in range(12_000):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the bridges did not finish within 10 minutes")


def _acked(root: Path) -> int:
    folder = root / "state" / "incoming"
    if not folder.exists():
        return 0
    return sum(1 for p in folder.glob("*.json") if '"acked"' in p.read_text(encoding="utf-8"))


async def _bridge_rate(
    work: Path, homes: tuple[Path, Path], docs: list[bytes], consent: str
) -> float:
    sender, receiver = work / "b-send", work / "b-recv"
    procs = [
        subprocess.Popen(  # noqa: ASYNC220  # started once, before the clock
            _argv(home, root, "--interval", "0.2", *flag),
            env=_env(),
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        for home, root, flag in (
            (homes[0], sender, ("--no-receive",)),
            (homes[1], receiver, ("--no-send",)),
        )
    ]
    try:
        await _until(lambda: (receiver / "state" / "health.json").exists())
        started = time.perf_counter()
        for i, doc in enumerate(docs):
            _drop(sender / "outbox", f"d{i:05d}", doc, consent)
        await _until(lambda: _acked(receiver) >= len(docs))
        return len(docs) / (time.perf_counter() - started)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)


async def _sdk_rate(dep: g.Deployment, work: Path, docs: list[bytes]) -> float:
    sender, recipient = dep.senders[0], dep.recipients[0]

    def client(pair: DeviceKeyPair) -> StafettClient:
        store = Keystore(
            owner=str(pair.kid.device),
            keypairs={pair.kid.version: pair},
            pinned_admins={str(g.ROOT_ADMIN): dep.admin_key.verify_key},
        )
        return StafettClient(dep.gw.url, store, spool_dir=work)

    async with client(sender) as s, client(recipient) as r:
        await s.sync_directory()
        await r.sync_directory()
        started = time.perf_counter()
        ids = []
        for doc in docs:
            result = await s.send(
                recipient_unit=g.RECIPIENT_UNIT,
                consent_id=dep.consent_id,
                subject_ref=g.SUBJECT,
                category=g.CATEGORY,
                purpose=g.PURPOSE,
                body=doc,
                expires_in_s=g.DAY,
            )
            ids.append(result.message_id)
        for mid in ids:
            out = work / f"{mid}.out"
            await r.fetch(mid, out)
            await r.ack(mid)
            out.unlink()
        return len(docs) / (time.perf_counter() - started)


# The bridge run by a wrapper that reports the process's own peak RSS (``VmHWM``, the
# high-water mark of the address space since exec) on a pipe. Not ``wait4``'s ru_maxrss:
# Linux carries the *parent's* high-water mark into the child across fork + exec
# (``signal->maxrss``), so a bridge started from this 60+ MiB benchmark process would
# report at least the benchmark's own size (the 64.6–66.5 MiB measured before).
_REPORT = """
import os
with open("/proc/self/status") as st, os.fdopen(int(os.environ["BENCH_RSS_FD"]), "w") as out:
    out.write(next(x for x in st if x.startswith("VmHWM")).split()[1])
"""
_WRAP = (
    "import sys\nfrom clients.cli.main import main\ntry:\n    status = main(sys.argv[1:])\n"
    "finally:\n"
    + "".join(f"    {line}\n" for line in _REPORT.strip().splitlines())
    + "sys.exit(status)\n"
)


def _peak_kib(code: str, args: list[str]) -> int:
    read, write = os.pipe()
    env = {**_env(), "BENCH_RSS_FD": str(write)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=REPO,
        stderr=subprocess.DEVNULL,
        pass_fds=(write,),
    )
    os.close(write)
    with os.fdopen(read) as report:
        peak = report.read()
    if proc.wait() != 0:
        raise RuntimeError(f"exited {proc.returncode}")
    return int(peak)


def _peak_rss_mib(argv: list[str]) -> float:
    """Peak RSS (MiB) of the bridge command ``argv`` (from ``_argv``)."""
    return round(_peak_kib(_WRAP, argv[3:]) / 1024, 1)


def _floor_mib(imports: str) -> float:
    """Peak RSS (MiB) of an interpreter that only imports ``imports``: the floor."""
    return round(_peak_kib(f"{imports}\n{_REPORT}", []) / 1024, 1)


def _big_file(path: Path, size: int) -> Path:
    chunk = os.urandom(1 << 20)
    with path.open("wb") as out:
        for _ in range(size >> 20):
            out.write(chunk)
    return path


async def _rss(work: Path, homes: tuple[Path, Path], consent: str, size: int) -> dict[str, float]:
    sender, receiver = work / "r-send", work / "r-recv"
    # The same kind of round with nothing to move: interpreter, imports, keystore
    # unlock, directory sync. What the large document adds is the difference.
    idle = await asyncio.to_thread(
        _peak_rss_mib, _argv(homes[0], work / "r-idle", "--once", "--no-receive")
    )
    _drop(sender / "outbox", "big", _big_file(work / "big.bin", size), consent)
    send = await asyncio.to_thread(
        _peak_rss_mib, _argv(homes[0], sender, "--once", "--no-receive", "--max-mib", "2048")
    )
    receive = await asyncio.to_thread(
        _peak_rss_mib, _argv(homes[1], receiver, "--once", "--no-send")
    )
    if not any((receiver / "inbox").iterdir()):
        raise RuntimeError("the large document did not arrive")
    return {
        "rss_mib_python": await asyncio.to_thread(_floor_mib, "pass"),
        "rss_mib_imports": await asyncio.to_thread(_floor_mib, "import clients.cli.main"),
        "rss_mib_idle_round": idle,
        "rss_mib_send": send,
        "rss_mib_receive": receive,
        "rss_mib_added_by_document": round(max(send, receive) - idle, 1),
    }


async def _run(quick: bool) -> dict[str, Any]:
    n = 20 if quick else 200
    big = (128 << 20) if quick else (1 << 30)
    docs = [os.urandom(DOC_BYTES) for _ in range(n)]
    with tempfile.TemporaryDirectory(prefix="stafett-bench-bridge-") as tmp:
        work = Path(tmp)
        admin_key = SigningKey.generate()
        settings = {**g.UNLIMITED, "max_body_bytes": str(big + (64 << 20))}
        directory = await asyncio.to_thread(g.init_gateway, work / "gw", admin_key, **settings)
        gw = await g.start_gateway(work / "gw", admin_key, work / "gw.log", **settings)
        try:
            async with aiohttp.ClientSession() as http:
                dep = await g.deploy(gw, admin_key, directory, 1, http)
                homes = (
                    _home(work / "home-s", dep.senders[0], dep),
                    _home(work / "home-r", dep.recipients[0], dep),
                )
                print(f"bridge: {n} drops of {DOC_BYTES} B", file=sys.stderr)
                bridge = await _bridge_rate(work, homes, docs, dep.consent_id)
                print("sdk: the same documents", file=sys.stderr)
                sdk = await _sdk_rate(dep, work, docs)
                print(f"rss: one document of {big >> 20} MiB", file=sys.stderr)
                rss = await _rss(work, homes, dep.consent_id, big)
        finally:
            gw.stop()
    ratio = bridge / sdk
    return {
        "drops": n,
        "doc_bytes": DOC_BYTES,
        "bridge_drops_per_s": round(bridge, 2),
        "sdk_drops_per_s": round(sdk, 2),
        "ratio": round(ratio, 3),
        "goal_ratio_min": GOAL_RATIO,
        "large_doc_mib": big >> 20,
        **rss,
        "goal_rss_mib_max": GOAL_RSS_MIB,
        "goal_met": ratio >= GOAL_RATIO
        and max(rss["rss_mib_send"], rss["rss_mib_receive"]) <= GOAL_RSS_MIB,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def run(quick: bool) -> dict[str, Any]:
    return asyncio.run(_run(quick))

"""Run the ``stafett`` CLI against a live test gateway and provision CLI devices."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.cli.device import write_subject_key
from clients.cli.main import main
from clients.keys_admin import main as keys_cli
from clients.keys_admin.store import KEYSTORE, LOG, TRUST_ROOT, trust_root_json
from keys.crypto.canonical import canonical_json
from keys.crypto.keystore import KdfCost, save_keystore
from tests.support.factories import ROOT_ADMIN, admin_keystore, enrol_body
from tests.support.gateway import RunningGateway

PNR = "19121212-1212\n"  # Skatteverket's test personnummer
OFFICERS = {"sara": "sav/sara", "nora": "so-nordost/nora"}
_LOCK = asyncio.Lock()  # stdout/stderr/stdin are process-wide: one CLI run at a time


@dataclass
class Outcome:
    status: int
    out: str
    err: str

    def json(self) -> Any:
        lines = [line for line in self.out.splitlines() if line.startswith("{")]
        assert lines, (self.out, self.err)
        return json.loads(lines[-1])


def run_sync(argv: list[str], stdin: str) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    finally:
        sys.stdin = saved
    return Outcome(status, out.getvalue(), err.getvalue())


def run_keys(*argv: str) -> Outcome:
    """``stafett-keys`` through its entry function (no network: it may run on the loop)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = keys_cli.main(list(argv))
    return Outcome(status, out.getvalue(), err.getvalue())


@dataclass
class Cli:
    gw: RunningGateway
    root: Path

    def home(self, who: str) -> Path:
        return self.root / who

    async def run(self, who: str, *args: str, stdin: str = "", expect: int | None = 0) -> Outcome:
        argv = ["--home", str(self.home(who)), *args]
        async with _LOCK:
            outcome = await asyncio.to_thread(run_sync, argv, stdin)
        # Whatever happened, never a traceback on the user's screen.
        assert "Traceback" not in outcome.err + outcome.out
        if expect is not None:
            assert outcome.status == expect, (outcome.out, outcome.err)
        return outcome

    async def record_consent(
        self,
        who: str = "sara",
        *pairs: str,
        category: str = "case_transfer",
        purpose: str = "transfer_to_district",
        days: int = 90,
    ) -> str:
        answer = await self.run(
            who,
            "--json",
            "consent",
            "record",
            "--pnr-stdin",
            *[a for p in (pairs or ("sav:so-nordost",)) for a in ("--pair", p)],
            "--category",
            category,
            "--purpose",
            purpose,
            "--days",
            str(days),
            "--form",
            "oral",
            "--witness",
            "Kollega K",
            "--note",
            "I telefon",
            stdin=PNR,
        )
        return str(answer.json()["consent_id"])

    async def send(
        self,
        *extra: str,
        text: str = "Hej",
        expect: int = 0,
        category: str = "case_transfer",
        purpose: str = "transfer_to_district",
    ) -> Outcome:
        body = self.root / "text.txt"
        body.write_text(text)
        return await self.run(
            "sara",
            "--json",
            "send",
            "--pnr-stdin",
            "--to",
            "so-nordost",
            "--category",
            category,
            "--purpose",
            purpose,
            "--text-file",
            str(body),
            *extra,
            stdin=PNR,
            expect=expect,
        )


def _provisioning_files(gw: RunningGateway, root: Path) -> tuple[Path, Path]:
    """What a security admin hands out: the trust root and the city subject key."""
    root.mkdir(parents=True)
    trust = root / "trust-root.json"
    trust.write_bytes(
        canonical_json({"v": 1, "admins": {"admin/root/1": gw.admin_key.verify_key.b64()}})
    )
    subject_key = root / "city.key"
    write_subject_key(subject_key)
    return trust, subject_key


async def provision(gw: RunningGateway, root: Path) -> Cli:
    """``stafett init`` per officer, then enrol the requests as the root admin would."""
    trust, subject_key = _provisioning_files(gw, root)
    cli = Cli(gw, root)
    key = gw.identity.verify_key.b64()
    entries = []
    for who, device in OFFICERS.items():
        request = root / f"{who}.request.json"
        await cli.run(
            who,
            "init",
            "--device",
            device,
            "--gateway",
            str(gw.url),
            "--trust-root",
            str(trust),
            "--subject-key-file",
            str(subject_key),
            "--gateway-key",
            key,
            "--request-out",
            str(request),
        )
        req = json.loads(request.read_text())
        entries.append(
            gw.builder.entry(
                "enrol_device",
                enrol_body(req["device"], req["verify_key"], req["encryption_key"]),
            )
        )
    await gw.append(*entries)
    return cli


async def admin_dir(cli: Cli) -> Path:
    """The security admin's ``stafett-keys`` directory: the root admin's keystore."""
    keys_dir = cli.root / "admin"
    keys_dir.mkdir()
    store = admin_keystore(cli.gw.admin_key)
    passphrase = "cli test passphrase"  # the fixture's STAFETT_PASSPHRASE
    await asyncio.to_thread(
        save_keystore, keys_dir / KEYSTORE, store, passphrase, cost=KdfCost.TEST
    )
    return keys_dir


async def admin_workspace(cli: Cli) -> Path:
    """:func:`admin_dir` plus the trust root and the gateway's directory log, so that
    ``stafett-keys`` signs on top of what the gateway holds, as a real admin's would."""
    keys_dir = await admin_dir(cli)
    trust = trust_root_json({str(ROOT_ADMIN): cli.gw.admin_key.verify_key})
    (keys_dir / TRUST_ROOT).write_bytes(canonical_json(trust) + b"\n")
    reply = await cli.gw.admin.get("/v1/directory/entries?after=-1&limit=1000")
    assert reply.status == 200, reply.body
    entries = reply.json()["entries"]
    (keys_dir / LOG).write_bytes(b"".join(canonical_json(e) + b"\n" for e in entries))
    return keys_dir

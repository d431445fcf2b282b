"""The demo's stage behind ``clients.demo.flows``: the cast (units, officers, the person),
running the real CLIs as each officer, and step 0 (trust root, gateway, devices).

Every command runs as a child process with ``--json``; a step checks the outcome and
raises :class:`DemoFailed` with what went wrong, so ``make demo`` is a test, not a show.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from clients.demo.gateway_process import GatewayProcess, clean_env, tool
from clients.demo.support import (
    DEMO_PASSPHRASE,
    GATEWAY_PASSPHRASE,
    DemoFailed,
    Result,
    Runner,
)

PNR = "19121212-1212\n"  # Skatteverket's test number (Tolvan Tolvansson)
UNITS = {
    "sav": ("sav", "Samlad avhopparverksamhet"),
    "so-nordost": ("district", "Socialtjänsten Nordost"),
    "so-hisingen": ("district", "Socialtjänsten Hisingen"),
    "socialjour": ("socialjour", "Socialjouren"),
    "las-storgoteborg": ("las", "LAS Storgöteborg"),
}
OFFICERS = {
    "sara": "sav/sara",
    "lars": "las-storgoteborg/lars",
    "nora": "so-nordost/nora",
    "hugo": "so-hisingen/hugo",
    "siv": "socialjour/siv",
}


class DemoBase:
    def __init__(self, root: Path, *, verbose: bool) -> None:
        self.root = root
        self.runner = Runner(
            root,
            verbose=verbose,
            env=clean_env(
                STAFETT_PASSPHRASE=DEMO_PASSPHRASE, STAFETT_KDF_COST="test", STAFETT_LANG="sv"
            ),
        )
        self.gateway = GatewayProcess(root / "gateway", GATEWAY_PASSPHRASE)
        self.admin = root / "admin"
        self.files = root / "files"
        self.files.mkdir(parents=True)
        self.consent_id = ""
        self.watcher: subprocess.Popen[str] | None = None

    # --- running the CLIs ------------------------------------------------------------------
    def keys(self, *args: str) -> Result:
        result = self.runner.run([*tool("stafett-keys"), *args, "--dir", str(self.admin)])
        if result.status != 0:
            raise DemoFailed(f"stafett-keys {args[0]} failed: {result.stderr.strip()}")
        return result

    def stafett(self, who: str, *args: str, stdin: str | None = None, expect: int = 0) -> Result:
        argv = [*tool("stafett"), "--home", str(self.home(who)), "--json", *args]
        result = self.runner.run(argv, stdin=stdin)
        if result.status != expect:
            raise DemoFailed(
                f"`stafett {' '.join(args[:2])}` as {who}: exit {result.status}, expected "
                f"{expect}: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def send(
        self,
        who: str,
        to: str,
        category: str,
        purpose: str,
        *more: str,
        pnr: bool = True,
        expect: int = 0,
    ) -> Result:
        """``stafett send`` as ``who``; ``more`` are the other options (files, --consent,
        --officer, --reply-to). With ``pnr`` the personnummer goes in on stdin, as an
        officer would type it at the prompt (never on the command line)."""
        flags = ["--pnr-stdin"] if pnr else []
        args = ["send", *flags, "--to", to, "--category", category, "--purpose", purpose, *more]
        return self.stafett(who, *args, stdin=PNR if pnr else None, expect=expect)

    def home(self, who: str) -> Path:
        return self.root / "devices" / who

    def admin_cmd(self, *args: str, keys_dir: bool = True) -> Result:
        argv = [
            *tool("stafett"),
            "--home",
            str(self.root / "admin-home"),
            "--gateway",
            self.gateway.url,
            "--json",
            "admin",
            *args,
        ]
        if keys_dir:
            argv += ["--keys-dir", str(self.admin)]
        result = self.runner.run(argv)
        if result.status != 0:
            raise DemoFailed(f"stafett admin {args[0]} failed: {result.stderr.strip()}")
        return result

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.files / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def opened_dir(self, who: str) -> Path:
        return self.root / "opened" / who

    # --- narrative ----------------------------------------------------------------------------
    @staticmethod
    def say(text: str) -> None:
        print(text, flush=True)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            raise DemoFailed(what)
        self.say(f"   ✓ {what}")

    # --- setup ----------------------------------------------------------------------------------
    def setup(self) -> None:
        self.say("0. Förtroenderot, gateway, enheter och handläggare")
        self.keys("init", "--admin", "root")
        trust = json.loads((self.admin / "trust-root.json").read_text())
        self.gateway.init(trust["admins"])
        self.gateway.start(self.root / "gateway.log")
        self.check(True, f"gateway på {self.gateway.url} (SQLite, loopback)")
        for unit, (kind, name) in UNITS.items():
            self.keys("unit", "create", unit, "--kind", kind, "--name", name)
        subject_key = self.root / "city-subject.key"
        self.admin_cmd("subject-key-new", "--out", str(subject_key), keys_dir=False)

        def init(who: str) -> Path:
            request = self.root / f"{who}-request.json"
            self.stafett(
                who,
                "init",
                "--device",
                OFFICERS[who],
                "--gateway",
                self.gateway.url,
                "--trust-root",
                str(self.admin / "trust-root.json"),
                "--subject-key-file",
                str(subject_key),
                "--gateway-key",
                self.gateway.verify_key,
                "--request-out",
                str(request),
            )
            return request

        # Each officer sets up their own laptop (in parallel); the admin enrols in turn.
        with ThreadPoolExecutor(max_workers=len(OFFICERS)) as pool:
            requests = list(pool.map(init, OFFICERS))
        for request in requests:
            self.keys("device", "enrol", str(request))
        pushed = self.admin_cmd("push-directory").json()
        self.check(
            pushed["size"] == 1 + len(UNITS) + len(OFFICERS),
            f"nyckelkatalogen uppladdad ({pushed['size']} signerade poster)",
        )
        listing = self.stafett("sara", "directory").json()
        units = {u["unit"] for u in listing["units"]}
        self.check(
            units == set(UNITS) and len(listing["devices"]) == len(OFFICERS),
            "sav/sara har verifierat katalogen mot den fästa rotnyckeln",
        )

    # --- the flows ----------------------------------------------------------------------------
    def blobs_left(self) -> list[Path]:
        blobs = self.gateway.data_dir / "blobs"
        return [p for p in blobs.rglob("*") if p.is_file()] if blobs.exists() else []

    def audit_verify(self, export: Path, known: Path) -> Result:
        argv = [*tool("stafett-keys"), "audit", "verify", "--file", str(export), "--json"]
        argv += ["--gateway-key", self.gateway.verify_key, "--known-checkpoints", str(known)]
        return self.runner.run(argv)

    def open(self, who: str, message_id: str) -> dict[str, Any]:
        result = self.stafett(who, "open", message_id, "--out", str(self.opened_dir(who)))
        return dict(result.json())

    def close(self) -> None:
        if self.watcher is not None and self.watcher.poll() is None:
            self.watcher.kill()
            self.watcher.wait(timeout=5)
        self.gateway.stop()

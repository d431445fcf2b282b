"""``make run``: a gateway on SQLite in ./data for trying things by hand.

Creates (once) a trust root in ./data/admin and the gateway key in ./data/gateway,
prints the next commands, then runs ``stafett-gateway serve`` in the foreground
(Ctrl-C stops it). Development settings only: a fixed passphrase unless
``STAFETT_PASSPHRASE`` is set, and the keystore's test KDF cost.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from clients.demo.gateway_process import GatewayProcess, clean_env, tool
from clients.demo.support import DEMO_PASSPHRASE, GATEWAY_PASSPHRASE, DemoFailed, Runner

PORT = 8787


def main() -> int:
    data = Path("data").resolve()
    admin, gateway = data / "admin", data / "gateway"
    passphrase = os.environ.get("STAFETT_PASSPHRASE", DEMO_PASSPHRASE)
    env = clean_env(STAFETT_PASSPHRASE=passphrase, STAFETT_KDF_COST="test")
    gw = GatewayProcess(gateway, GATEWAY_PASSPHRASE, port=PORT)
    runner = Runner(data, env=env)
    data.mkdir(exist_ok=True)
    try:
        if not (admin / "trust-root.json").exists():
            _ok(runner.run([*tool("stafett-keys"), "init", "--admin", "root", "--dir", str(admin)]))
        pins = json.loads((admin / "trust-root.json").read_text())["admins"]
        gw.init(pins)
        gw.command("migrate")
    except DemoFailed as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    key = gw.verify_key
    url = f"http://127.0.0.1:{PORT}"
    print(
        f"""
Gateway: {url}  (SQLite in {gateway}; Ctrl-C stops it)
Trust root: {admin}   Gateway key (pin it): {key}
Dev passphrase for every keystore: STAFETT_PASSPHRASE (default: "{DEMO_PASSPHRASE}")

In another terminal:
  export STAFETT_PASSPHRASE="{passphrase}" STAFETT_KDF_COST=test
  stafett-keys unit create sav --kind sav --name SAV --dir {admin}
  stafett admin subject-key-new --out {data}/city.key
  stafett --home {data}/sara init --device sav/sara --gateway {url} \\
      --trust-root {admin}/trust-root.json --subject-key-file {data}/city.key \\
      --gateway-key {key} --request-out {data}/sara.json
  stafett-keys device enrol {data}/sara.json --dir {admin}
  stafett --gateway {url} admin push-directory --keys-dir {admin}
  stafett --home {data}/sara directory
Then: consent record, send, inbox, open, ack, status, watch (stafett --help).
""",
        flush=True,
    )
    os.execvpe(tool("stafett-gateway")[0], [*tool("stafett-gateway"), "serve"], gw.env())  # noqa: S606
    return 0  # not reached


def _ok(result: object) -> str:
    status, stdout, stderr = (getattr(result, k) for k in ("status", "stdout", "stderr"))
    if status != 0:
        raise DemoFailed(str(stderr).strip() or "a setup command failed")
    return str(stdout)


if __name__ == "__main__":
    sys.exit(main())

"""The officer's CLI across a gateway key rotation (issue 12, client side).

`stafett-gateway identity rotate` on the real gateway; an instance started from the
rotated keystore signs with the new key. The CLI, which pinned the old key at `init`,
accepts the new one because the old key announced it (audit entry + checkpoint), warns
loudly, saves it, and verifies checkpoints of both keys from then on. A gateway with a
key nobody trusted announcing it — even one serving a look-alike announcement signed
by itself — is refused.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from clients.sdk.gateway_trust import GatewayTrust
from gateway.appkeys import SESSIONMAKER
from gateway.cli import main as gateway_main
from gateway.db import audit_trail as audit
from tests.support.cli import Cli
from tests.support.gateway import PASSPHRASE, RunningGateway, start_gateway, stop_gateway

pytestmark = pytest.mark.asyncio


def _db_url(cli: Cli) -> str:
    url = cli.gw.settings.database_url
    assert url is not None
    return url


def _rotate(monkeypatch: pytest.MonkeyPatch, gw: RunningGateway) -> int:
    """`stafett-gateway identity rotate` as an operator runs it on the gateway host."""
    for name in [k for k in os.environ if k.startswith("STAFETT_GATEWAY") or "DATA_DIR" in k]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("STAFETT_DATA_DIR", str(gw.settings.data_dir))
    assert gw.settings.database_url is not None
    monkeypatch.setenv("STAFETT_DATABASE_URL", gw.settings.database_url)
    monkeypatch.setenv("STAFETT_GATEWAY_KEY_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("STAFETT_INSECURE_FAST_KDF", "1")
    return gateway_main(["identity", "rotate"])


async def _config(cli: Cli, who: str) -> dict[str, object]:
    value = json.loads((cli.home(who) / "config.json").read_text())
    assert isinstance(value, dict)
    return value


async def test_a_rotated_gateway_key_is_accepted_when_the_old_key_announced_it(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = cli.gw.identity
    await cli.run("sara", "directory")  # pinned key, nothing new
    assert await asyncio.to_thread(_rotate, monkeypatch, cli.gw) == 0
    # A further instance on the same database, started from the rotated keystore.
    rotated = await start_gateway(
        cli.gw.settings.data_dir,
        _db_url(cli),
        seed=False,
        admin_key=cli.gw.admin_key,
    )
    try:
        assert rotated.identity.kid != old.kid
        new_key = rotated.identity.verify_key
        # The old answer shape still names the current key; the key set marks it.
        reply = await rotated.admin.get("/v1/gateway/key")
        assert reply.status == 200, reply.body
        body = reply.json()
        assert body["verify_key"] == new_key.b64()
        assert [k["current"] for k in body["keys"]] == [False, True]
        assert len(body["rotations"]) == 1

        first = await cli.run("sara", "--gateway", str(rotated.url), "directory")
        assert "GATEWAYNS NYCKEL HAR BYTTS" in first.err
        assert str(rotated.identity.kid) in first.err
        assert new_key.fingerprint() in first.err
        config = await _config(cli, "sara")
        assert config["gateway_key"] == old.verify_key.b64()  # the pin stays
        assert config["gateway_keys_added"] == [new_key.b64()]
        # From now on both keys' checkpoints verify, and the change is told once.
        again = await cli.run("sara", "--gateway", str(rotated.url), "directory")
        assert "GATEWAYNS NYCKEL" not in again.err
        back = await cli.run("sara", "directory")  # the instance still on the old key
        assert "GATEWAYNS NYCKEL" not in back.err
        shown = await cli.run("sara", "gateway-key", "show")
        assert old.verify_key.fingerprint() in shown.out
        assert new_key.fingerprint() in shown.out
        # The officer's work goes on through the rotated instance.
        await cli.record_consent("sara")
        sent = await cli.send("--gateway", str(rotated.url), text="efter nyckelbytet")
        assert sent.json()["message_id"]
    finally:
        await stop_gateway(rotated)


async def test_a_gateway_key_nobody_announced_is_refused(cli: Cli, tmp_path: Path) -> None:
    # Another gateway on the same database with a key of its own (a substituted
    # gateway, or an instance given the wrong keystore). It even serves a look-alike
    # announcement: a gateway_key_rotated entry naming its key, under a checkpoint it
    # signed itself.
    forger = await start_gateway(
        tmp_path / "forger",
        _db_url(cli),
        seed=False,
        admin_key=cli.gw.admin_key,
    )
    try:
        fake = forger.identity
        assert fake.verify_key != cli.gw.identity.verify_key
        async with forger.app[SESSIONMAKER].begin() as session:
            await audit.record(
                session,
                "gateway_key_rotated",
                now=1_700_000_000,
                kid=str(fake.kid),
                previous=str(cli.gw.identity.kid),
                fingerprint=fake.verify_key.fingerprint(),
            )
            await audit.sign_checkpoint(session, fake.kid, fake.signing_key, now=1_700_000_000)
        answer = (await forger.admin.get("/v1/gateway/key")).json()
        trust = GatewayTrust([cli.gw.identity.verify_key])
        assert trust.learn(answer) == []  # announced by an untrusted key: nothing learned
        refused = await cli.run("sara", "--gateway", str(forger.url), "directory", expect=None)
        assert refused.status != 0
        assert "directory_signature_invalid" in refused.err + refused.out
        config = await _config(cli, "sara")
        assert "gateway_keys_added" not in config
        # The real gateway still verifies.
        await cli.run("sara", "directory")
    finally:
        await stop_gateway(forger)


async def test_an_admin_pins_a_gateway_key_explicitly(cli: Cli, tmp_path: Path) -> None:
    # A replacement key the old one did not announce (e.g. after a compromise): the
    # security admin gives the officer the key; pinning it is deliberate and loud.
    other = await start_gateway(
        tmp_path / "replacement",
        _db_url(cli),
        seed=False,
        admin_key=cli.gw.admin_key,
    )
    try:
        key = other.identity.verify_key
        await cli.run("sara", "--gateway", str(other.url), "directory", expect=None)
        pinned = await cli.run("sara", "gateway-key", "pin", key.b64())
        assert key.fingerprint() in pinned.err
        done = await cli.run("sara", "--gateway", str(other.url), "directory")
        assert done.status == 0
        bad = await cli.run("sara", "gateway-key", "pin", "AAAA", expect=None)
        assert bad.status != 0
    finally:
        await stop_gateway(other)

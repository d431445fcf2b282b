"""One gateway identity for many instances, and rotating it (issue 12 item 1).

The reported bug first: two instances with keys of their own on one database sign
checkpoints of one chain, and the trail no longer verifies against the first key.
Then the fix: `identity export` + `init --from` give the second instance the same key;
`identity rotate` adds a version and `stafett-keys audit verify` accepts the key set.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from clients.keys_admin.audit import Export, verify_export
from clients.keys_admin.store import CliError
from gateway.appkeys import SESSIONMAKER
from gateway.cli import main as gateway_main
from gateway.db import audit_store
from gateway.db import audit_trail as audit
from gateway.identity import (
    IdentityError,
    export_identity,
    import_identity,
    init_identity,
    load_identity,
)
from gateway.jobs.expiry import sign_audit_checkpoint
from keys.crypto.keypairs import VerifyKey
from tests.support.gateway import (
    PASSPHRASE,
    RunningGateway,
    make_settings,
    start_gateway,
    stop_gateway,
)

ENTRIES = "/v1/directory/entries"


async def _export(gw: RunningGateway) -> Export:
    """What `stafett admin audit-export` writes: every entry and the latest checkpoint."""
    async with gw.app[SESSIONMAKER]() as session:
        entries = [audit.row_to_json(r) for r in await audit_store.entries_from(session, 0, 10**6)]
        latest = await audit_store.latest_checkpoint(session)
    assert latest is not None
    return Export(entries, [audit.checkpoint_json(latest)])


async def _audited_step(gw: RunningGateway, event: str) -> None:
    async with gw.app[SESSIONMAKER].begin() as session:
        await audit.record(session, event, now=1_700_000_000, probe=event)


async def _checkpoint(gw: RunningGateway) -> dict[str, Any]:
    await sign_audit_checkpoint(gw.app[SESSIONMAKER], gw.identity, now=1_700_000_001)
    checkpoint: dict[str, Any] = (await _export(gw)).checkpoints[0]
    return checkpoint


def _cli(monkeypatch: pytest.MonkeyPatch, data_dir: Path, store_url: str, *argv: str) -> int:
    for name in [k for k in os.environ if k.startswith("STAFETT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("STAFETT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STAFETT_DATABASE_URL", store_url)
    monkeypatch.setenv("STAFETT_GATEWAY_KEY_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("STAFETT_INSECURE_FAST_KDF", "1")
    return gateway_main(list(argv))


@pytest_asyncio.fixture
async def at(store_url: str) -> AsyncIterator[Callable[..., Awaitable[RunningGateway]]]:
    """Start a further instance on ``store_url`` with the given data directory."""
    started: list[RunningGateway] = []

    async def _start(data_dir: Path, **overrides: Any) -> RunningGateway:
        gw = await start_gateway(data_dir, store_url, seed=False, **overrides)
        started.append(gw)
        return gw

    yield _start
    for gw in started:
        await stop_gateway(gw)


@pytest.mark.asyncio
async def test_two_instances_with_own_keys_break_the_audit_trail(start) -> None:
    """The bug as reported: B's checkpoint is not signed by A's key."""
    a = await start()
    b = await start(seed=False)  # its own data_dir, so its own new key
    assert a.identity.verify_key != b.identity.verify_key
    await _audited_step(a, "probe_a")
    await _checkpoint(a)
    await _audited_step(b, "probe_b")
    await _checkpoint(b)
    with pytest.raises(CliError, match="forged"):
        verify_export(await _export(a), a.identity.verify_key, [])


@pytest.mark.asyncio
async def test_exported_key_makes_every_instance_verify(
    start, at, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await start()
    export = tmp_path / "gateway-key.export"
    monkeypatch.setenv("EXPORT_PASS", "another passphrase for the transfer")
    code = _cli(
        monkeypatch,
        a.settings.data_dir,
        store_url,
        "identity",
        "export",
        "--out",
        str(export),
        "--passphrase-env",
        "EXPORT_PASS",
    )
    assert code == 0
    assert export.stat().st_mode & 0o777 == 0o600
    # Not the instance's passphrase: the transfer file is sealed under its own.
    monkeypatch.setenv("EXPORT_PASS", "another passphrase for the transfer")
    b_dir = tmp_path / "instance-b"
    assert (
        _cli(
            monkeypatch,
            b_dir,
            store_url,
            "init",
            "--from",
            str(export),
            "--passphrase-env",
            "EXPORT_PASS",
        )
        == 0
    )
    b = await at(b_dir, admin_key=a.admin_key)
    assert b.identity.verify_key == a.identity.verify_key
    await _audited_step(a, "probe_a")
    first = await _checkpoint(a)
    await _audited_step(b, "probe_b")
    second = await _checkpoint(b)
    assert first["signer"] == second["signer"] == str(a.identity.kid)
    head = verify_export(await _export(a), a.identity.verify_key, [first])
    assert head.size == second["size"]


def test_import_refuses_a_different_existing_key(tmp_path: Path) -> None:
    """Replacing an instance's key by another gateway's would split the signers."""
    one = make_settings(tmp_path / "one", "sqlite+aiosqlite:///:memory:")
    two = make_settings(tmp_path / "two", "sqlite+aiosqlite:///:memory:")
    init_identity(one, {})
    init_identity(two, {})
    export_identity(one, tmp_path / "one.export")
    with pytest.raises(IdentityError, match="different gateway key"):
        import_identity(two, tmp_path / "one.export", {})
    with pytest.raises(IdentityError, match="exists"):
        export_identity(one, tmp_path / "one.export")
    # The same key again is fine (a re-run of a provisioning script).
    three = make_settings(tmp_path / "three", "sqlite+aiosqlite:///:memory:")
    assert import_identity(three, tmp_path / "one.export", {}).kid == load_identity(one).kid
    assert import_identity(three, tmp_path / "one.export", {}).kid == load_identity(one).kid
    with pytest.raises(IdentityError, match="keystore_wrong_passphrase"):
        import_identity(three, tmp_path / "one.export", {}, "not the passphrase")


@pytest.mark.asyncio
async def test_rotation_is_announced_and_the_key_set_verifies(
    start,
    at,
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a = await start()
    old = a.identity
    await _audited_step(a, "probe_before")
    before = await _checkpoint(a)
    capsys.readouterr()
    # In a thread: the command runs its own event loop (asyncio.run), as from a shell.
    rotate = ("identity", "rotate")
    assert await asyncio.to_thread(_cli, monkeypatch, a.settings.data_dir, store_url, *rotate) == 0
    printed = capsys.readouterr().out
    assert PASSPHRASE not in printed
    rotated = load_identity(a.settings)
    assert str(rotated.kid) == f"{old.kid.device}/{old.kid.version + 1}"
    assert set(rotated.key_set) == {str(old.kid), str(rotated.kid)}
    assert rotated.verify_key.b64() in printed
    # A second instance started from the rotated keystore signs with the new key.
    export = tmp_path / "rotated.export"
    assert (
        _cli(
            monkeypatch, a.settings.data_dir, store_url, "identity", "export", "--out", str(export)
        )
        == 0
    )
    b_dir = tmp_path / "instance-b"
    assert _cli(monkeypatch, b_dir, store_url, "init", "--from", str(export)) == 0
    b = await at(b_dir, admin_key=a.admin_key)
    assert b.identity.kid == rotated.kid
    await _audited_step(b, "probe_after")
    after = await _checkpoint(b)
    assert after["signer"] == str(rotated.kid)

    exported = await _export(a)
    announced = [e for e in exported.entries if e["event"] == "gateway_key_rotated"]
    assert [e["data"]["kid"] for e in announced] == [str(rotated.kid)]
    assert announced[0]["data"]["fingerprint"] == rotated.verify_key.fingerprint()
    # The old pin alone refuses the new key's checkpoint; the pinned set accepts both.
    with pytest.raises(CliError, match="forged"):
        verify_export(exported, old.verify_key, [before])
    keys = [old.verify_key, rotated.verify_key]
    assert verify_export(exported, keys, [before]).size == after["size"]
    # `identity show` lists both versions, the current one marked.
    capsys.readouterr()
    assert _cli(monkeypatch, b_dir, store_url, "identity", "show") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "(current)" in lines[1]
    assert str(rotated.kid) in lines[1]
    assert VerifyKey.from_b64(lines[0].split()[1]) == old.verify_key

"""Schema and migrations on both stores; settings; the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from gateway import cli
from gateway.db.engine import make_sessionmaker, open_engine
from gateway.db.models import Base
from gateway.migrations import head_revision, migrate
from gateway.settings import Settings, SettingsError
from keys.crypto.keypairs import SigningKey


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


@pytest.mark.asyncio
async def test_migration_matches_models_and_is_idempotent(store_url: str) -> None:
    assert await migrate(store_url) == head_revision()
    assert await migrate(store_url) == head_revision()  # second run: nothing to do
    engine = open_engine(store_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            assert version == head_revision()
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.sqlite3'}")
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await connection.scalar(text("PRAGMA foreign_keys")) == 1
            assert await connection.scalar(text("PRAGMA busy_timeout")) == 15000
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_sqlite_overwrites_deleted_content(tmp_path: Path) -> None:
    """secure_delete is set by the engine on every connection (reads and units of work),
    not inherited from however the SQLite library was built."""
    path = tmp_path / "s.sqlite3"
    engine = open_engine(f"sqlite+aiosqlite:///{path}")
    sessionmaker = make_sessionmaker(engine)
    marker = "ended-message-metadata-" * 8
    try:
        async with sessionmaker() as session:  # a fresh read connection
            assert await session.scalar(text("PRAGMA secure_delete")) == 1
        async with sessionmaker.begin() as session:
            assert await session.scalar(text("PRAGMA secure_delete")) == 1
            await session.execute(text("CREATE TABLE t (v TEXT)"))
            await session.execute(text("INSERT INTO t VALUES (:v)"), {"v": marker})
        async with sessionmaker.begin() as session:
            await session.execute(text("DELETE FROM t"))
    finally:
        await engine.dispose()  # the last connection closing folds the WAL into the file
    assert files_holding(tmp_path, marker.encode()) == []


def files_holding(directory: Path, needle: bytes) -> list[str]:
    return [p.name for p in directory.iterdir() if needle in p.read_bytes()]


def test_settings_from_file_and_env(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nport = 9000\nmax_json_bytes = 2048\ndata_dir = "/srv/st"\n')
    settings = Settings.load(config, {"STAFETT_PORT": "9100", "STAFETT_INSECURE_FAST_KDF": "yes"})
    assert settings.port == 9100  # env wins over the file
    assert settings.max_json_bytes == 2048
    assert settings.insecure_fast_kdf is True
    assert settings.host == "127.0.0.1"  # loopback by default
    assert settings.db_url == "sqlite+aiosqlite:////srv/st/gateway.sqlite3"
    assert settings.blobs == Path("/srv/st/blobs")
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]
    settings = Settings.load(None, {"STAFETT_GATEWAY_KEY_PASSPHRASE": "pw"})
    assert "pw" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "text"),
    [
        ({"STAFETT_MAX_BODY_BYTE": "1"}, None),
        ({"STAFETT_PORT": "eighty"}, None),
        ({"STAFETT_PORT": "70000"}, None),
        ({}, "typo_setting = 1\n"),
    ],
)
def test_settings_refuse_typos_and_bad_values(tmp_path: Path, env, text) -> None:
    path = None
    if text is not None:
        path = tmp_path / "bad.toml"
        path.write_text(text)
    with pytest.raises(SettingsError):
        Settings.load(path, env)


def test_cli_init_and_migrate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("STAFETT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STAFETT_GATEWAY_KEY_PASSPHRASE", "pw")
    monkeypatch.setenv("STAFETT_INSECURE_FAST_KDF", "1")
    root = SigningKey.generate().verify_key
    assert cli.main(["init", "--pin-admin", f"admin/root/1={root.b64()}"]) == 0
    first = capsys.readouterr().out
    assert "admin/root/1" in first
    assert cli.main(["init"]) == 0  # the key is kept, not replaced
    assert first.splitlines()[0] == capsys.readouterr().out.splitlines()[0]
    other = SigningKey.generate().verify_key
    assert cli.main(["init", "--pin-admin", f"admin/root/1={other.b64()}"]) == 2
    assert cli.main(["migrate"]) == 0
    assert cli.main(["migrate"]) == 0
    assert (tmp_path / "gateway.sqlite3").exists()
    assert (tmp_path / "gateway-key.json").stat().st_mode & 0o077 == 0
    monkeypatch.setenv("STAFETT_GATEWAY_KEY_PASSPHRASE", "wrong")
    from gateway.app import create_app
    from gateway.identity import IdentityError

    with pytest.raises(IdentityError):
        create_app(
            Settings.load(
                None, {"STAFETT_DATA_DIR": str(tmp_path), "STAFETT_GATEWAY_KEY_PASSPHRASE": "wrong"}
            )
        )


@pytest.mark.asyncio
async def test_database_errors_do_not_carry_bound_parameters(store_url: str) -> None:
    # Threat: a logged exception leaking a subject reference or an id bound into SQL.
    await migrate(store_url)
    engine = open_engine(store_url)
    marker = "f" * 64  # shaped like a subject reference
    try:
        with pytest.raises(Exception) as caught:  # noqa: PT011 - any driver error will do
            async with engine.begin() as connection:
                await connection.execute(
                    text("INSERT INTO no_such_table (subject_ref) VALUES (:ref)"), {"ref": marker}
                )
        assert marker not in str(caught.value)
    finally:
        await engine.dispose()

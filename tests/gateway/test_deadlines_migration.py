"""Migration 0002 on both stores: additive over a 0001 database that holds data."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Connection, text

from gateway.db.engine import open_engine
from gateway.migrations import alembic_config, head_revision, migrate


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade_to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


@pytest.mark.asyncio
async def test_0002_keeps_existing_rows_and_adds_empty_markers(store_url: str) -> None:
    engine = open_engine(store_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0001")
            await connection.execute(
                text(
                    "INSERT INTO consents (id, version, subject_ref, recorded_by, record_json,"
                    " valid_from, valid_until, created_at) VALUES"
                    " ('c1', 1, :s, 'sav/bo/1', '{}', 1, 2, 1)"
                ),
                {"s": "ab" * 32},
            )
        # Up to the head (later migrations stack on 0002; their downgrades run below too).
        assert await migrate(store_url) == head_revision()
        async with engine.connect() as connection:
            row = (await connection.execute(text("SELECT id, reminded_at FROM consents"))).one()
            assert tuple(row) == ("c1", None)
            assert await connection.scalar(text("SELECT count(*) FROM send_refusals")) == 0
        async with engine.begin() as connection:  # and back, for a rollback of a release
            await connection.run_sync(_downgrade_to, "0001")
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM consents")) == 1
    finally:
        await engine.dispose()

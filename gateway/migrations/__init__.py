"""Alembic migrations, driven programmatically so they work from an installed package.

``migrate(url)`` upgrades to head and is idempotent (at head it does nothing). It runs
Alembic on a connection we open, so it works from the CLI and from inside a running
event loop (tests, start-up) alike.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.engine import open_engine

# A filesystem path, not "gateway:migrations": importlib.resources refuses packages whose
# __path__ holds an editable-install hook, and the package is never zipped.
SCRIPT_LOCATION = str(Path(__file__).resolve().parent)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(url: str) -> str:
    """Upgrade the database at ``url`` to head; returns the head revision."""
    engine = open_engine(url)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Two instances starting at once must not both create the tables.
                await connection.execute(text("SELECT pg_advisory_xact_lock(83847001)"))
            await connection.run_sync(_upgrade)
    finally:
        await engine.dispose()
    return head_revision()


async def current_revision(session: AsyncSession) -> str | None:
    try:
        revision = await session.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:
        return None
    return None if revision is None else str(revision)

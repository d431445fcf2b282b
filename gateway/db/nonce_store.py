"""SQL for request nonces (replay defence)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import NonceRow


async def record_nonce(session: AsyncSession, keyid: str, nonce: str, created: int) -> bool:
    """Remember ``(keyid, nonce)``; False if it was already there (a replay).

    ON CONFLICT DO NOTHING rather than catching the IntegrityError: on PostgreSQL a
    failed INSERT aborts the whole transaction, and the unique index decides atomically
    even when two instances see the same replayed request at the same moment.
    """
    values = {"keyid": keyid, "nonce": nonce, "created": created}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(NonceRow).values(values).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def purge_nonces(session: AsyncSession, older_than: int) -> int:
    """Forget nonces whose signature ``created`` is before ``older_than``.

    Safe because a request that old is refused as ``signature_expired`` before its nonce
    is looked at, so forgetting the nonce cannot re-open a replay.
    """
    result = await session.execute(delete(NonceRow).where(NonceRow.created < older_than))
    return int(result.rowcount)  # type: ignore[attr-defined]

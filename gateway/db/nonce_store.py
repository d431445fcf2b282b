"""SQL for request nonces (replay defence)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import handover_store
from gateway.db.models import NonceRow


async def record_nonce(session: AsyncSession, keyid: str, nonce: str, created: int) -> bool:
    """Remember ``(keyid, nonce)``; False if it was already there (a replay).
    (``handover_store.claim_nonce`` in an ORM session's transaction.)"""
    return await session.run_sync(
        lambda sync: handover_store.claim_nonce(sync.connection(), keyid, nonce, created)
    )


async def purge_nonces(session: AsyncSession, older_than: int) -> int:
    """Forget nonces whose signature ``created`` is before ``older_than``.

    Safe because a request that old is refused as ``signature_expired`` before its nonce
    is looked at, so forgetting the nonce cannot re-open a replay.
    """
    result = await session.execute(delete(NonceRow).where(NonceRow.created < older_than))
    return int(result.rowcount)  # type: ignore[attr-defined]

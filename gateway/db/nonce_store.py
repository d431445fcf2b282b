"""SQL for request nonces (replay defence)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import handover_store
from gateway.db.models import NonceRow
from gateway.db.units import in_session

# How long past the clock skew a nonce is remembered. A request older than the skew is
# refused (signature_expired) before its nonce is looked at — but a handover request
# stores its nonce only when its unit of work runs, at the end of its upload: a replay
# that arrived in time could still be streaming when the original's nonce is purged.
# So nonces are kept this much longer, and a unit refuses a request whose signature is
# older than what is kept (gateway.caller.PendingNonce.decide_by): an upload may take
# up to about an hour. The extra minute of the margin covers clock differences
# between instances.
NONCE_KEPT_S = 3600


async def record_nonce(session: AsyncSession, keyid: str, nonce: str, created: int) -> bool:
    """Remember ``(keyid, nonce)``; False if it was already there (a replay).
    (``handover_store.claim_nonce`` in an ORM session's transaction.)"""
    stored, _ = await in_session(
        session, lambda tx: handover_store.claim_nonce(tx.conn, keyid, nonce, created)
    )
    return stored


async def purge_nonces(session: AsyncSession, older_than: int) -> int:
    """Forget nonces whose signature ``created`` is before ``older_than``.

    Safe because a request that old is refused as ``signature_expired`` before its nonce
    is looked at, so forgetting the nonce cannot re-open a replay.
    """
    result = await session.execute(delete(NonceRow).where(NonceRow.created < older_than))
    return int(result.rowcount)  # type: ignore[attr-defined]

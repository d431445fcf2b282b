"""SQL of the PostgreSQL blob store (``gateway.blobs_pg``): uploads and their chunks."""

from __future__ import annotations

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.db.models import BlobChunkRow, BlobUploadRow, MessageRow

Executor = AsyncSession | AsyncConnection


async def start_upload(db: Executor, key: str, owner: str, now: int) -> None:
    await db.execute(
        insert(BlobUploadRow).values(blob_key=key, owner=owner, started=now, heartbeat=now)
    )


async def add_chunk(db: Executor, key: str, seq: int, data: bytes, now: int) -> None:
    await db.execute(insert(BlobChunkRow).values(blob_key=key, seq=seq, data=data))
    await touch(db, key, now)


async def touch(db: Executor, key: str, now: int) -> None:
    await db.execute(
        update(BlobUploadRow).where(BlobUploadRow.blob_key == key).values(heartbeat=now)
    )


async def drop_unreferenced(db: Executor, key: str) -> int:
    """Delete an upload and its chunks unless a message row references the key (then
    only the marker goes: the commit happened). Returns the chunks deleted."""
    await db.execute(delete(BlobUploadRow).where(BlobUploadRow.blob_key == key))
    result = await db.execute(
        delete(BlobChunkRow)
        .where(BlobChunkRow.blob_key == key, ~exists().where(MessageRow.blob_key == key))
        .returning(BlobChunkRow.seq)
    )
    return len(result.all())


async def extent(db: Executor, key: str) -> tuple[int, int]:
    """(number of chunks, total bytes) of ``key``."""
    row = (
        await db.execute(
            select(func.count(), func.coalesce(func.sum(func.length(BlobChunkRow.data)), 0)).where(
                BlobChunkRow.blob_key == key
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def chunk(db: Executor, key: str, seq: int) -> bytes | None:
    data = await db.scalar(
        select(BlobChunkRow.data).where(BlobChunkRow.blob_key == key, BlobChunkRow.seq == seq)
    )
    return None if data is None else bytes(data)


async def stale_uploads(db: Executor, before: int) -> list[str]:
    rows = await db.scalars(select(BlobUploadRow.blob_key).where(BlobUploadRow.heartbeat < before))
    return list(rows)


async def lock_stale(db: Executor, key: str, before: int) -> bool:
    """Take a stale upload for this sweep; False if it is fresh again, gone, or locked
    (being claimed by its owner's transaction right now)."""
    row = await db.execute(
        select(BlobUploadRow.blob_key)
        .where(BlobUploadRow.blob_key == key, BlobUploadRow.heartbeat < before)
        .with_for_update(skip_locked=True)
    )
    return row.first() is not None


async def orphan_keys(db: Executor) -> list[str]:
    """Chunks with neither an upload marker nor a message row: nobody owns them."""
    marker = exists().where(BlobUploadRow.blob_key == BlobChunkRow.blob_key)
    message = exists().where(MessageRow.blob_key == BlobChunkRow.blob_key)
    rows = await db.scalars(select(BlobChunkRow.blob_key).distinct().where(~marker, ~message))
    return list(rows)

"""Which blob store this gateway uses: the local directory (single host, the default) or
PostgreSQL (instances on several hosts share it). ``blob_store`` in the settings.

Both have one interface (``receive`` → ``claim`` in the row's transaction → ``publish``
or ``discard``; ``open_reader``; ``destroy`` in the ending transaction; ``sweep``), and
one contract test suite (tests/gateway/test_blob_contract.py) runs against both.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.blobs import BlobStore, Upload
from gateway.blobs_pg import PgBlobReader, PgBlobStore, PgUpload
from gateway.db.engine import SessionMaker
from gateway.db.units import SqliteUnits
from gateway.settings import Settings

Blobs = BlobStore | PgBlobStore
AnyUpload = Upload | PgUpload
__all__ = ["AnyUpload", "Blobs", "PgBlobReader", "make_blob_store"]


def make_blob_store(settings: Settings, engine: AsyncEngine, sessionmaker: SessionMaker) -> Blobs:
    if settings.blob_store == "postgresql":
        return PgBlobStore(engine, sessionmaker)
    store = BlobStore.of(settings)
    units = sessionmaker.units
    if isinstance(units, SqliteUnits):
        store.on_wiped = units.mark_wiped
    return store

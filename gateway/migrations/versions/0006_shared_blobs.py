"""Shared blobs: the PostgreSQL blob store's uploads and chunks (gateway.blobs_pg).

New tables only (created on SQLite too, unused there): an instance still running older
code keeps working (rolling upgrade). On PostgreSQL the chunk table is vacuumed after a
fixed number of deleted rows instead of a fraction of the table: deleted envelope
bytes stay in dead tuples until VACUUM, and SECURITY.md promises that is short.

Revision ID: 0006_shared_blobs
Revises: 0005_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_shared_blobs"
down_revision = "0005_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_uploads",
        sa.Column("blob_key", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("started", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("blob_key", name="pk_blob_uploads"),
    )
    op.create_index("ix_blob_uploads_heartbeat", "blob_uploads", ["heartbeat"])
    op.create_table(
        "blob_chunks",
        sa.Column("blob_key", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("blob_key", "seq", name="pk_blob_chunks"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Ciphertext already: compressing it costs CPU and saves nothing.
        op.execute("ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
        op.execute(
            "ALTER TABLE blob_chunks SET (autovacuum_vacuum_scale_factor = 0, "
            "autovacuum_vacuum_threshold = 256, toast.autovacuum_vacuum_scale_factor = 0, "
            "toast.autovacuum_vacuum_threshold = 256)"
        )


def downgrade() -> None:
    op.drop_table("blob_chunks")
    op.drop_index("ix_blob_uploads_heartbeat", table_name="blob_uploads")
    op.drop_table("blob_uploads")

"""Exposure after a revocation, and the directory position of each receipt (additive).

messages.exposed_at: a recipient key of the pending message was revoked (lost laptop):
the content must be treated as readable by whoever holds that key;
message_recipients.exposed_at: which recipient keys that was;
receipts.directory_size: the directory size when the gateway verified the receipt, so
it can be verified again against the directory as it stood then (a receipt stays proof
after its signer's key is rotated or revoked).

Only nullable columns: an instance still running older code keeps working while
another migrates (rolling upgrade), and nothing is rewritten.

Revision ID: 0004_exposure
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_exposure"
down_revision = "0003_consent_end"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("exposed_at", sa.BigInteger(), nullable=True))
    op.add_column("message_recipients", sa.Column("exposed_at", sa.BigInteger(), nullable=True))
    op.add_column("receipts", sa.Column("directory_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("directory_size")
    with op.batch_alter_table("message_recipients") as batch:
        batch.drop_column("exposed_at")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("exposed_at")

"""Deadlines, escalation, consent reminders and refusal counts (additive).

messages.escalated_at + index on messages.due (the escalation scan);
consents.reminded_at + index on consents.valid_until (the reminder scan);
send_refusals: de-identified counts of refused sends for the follow-up figures.

Only nullable columns, indexes and a new table: an instance still running 0001 code
keeps working while another migrates (rolling upgrade), and nothing is rewritten.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy on SQLite): a nullable column needs no rewrite.
    op.add_column("messages", sa.Column("escalated_at", sa.BigInteger(), nullable=True))
    op.create_index("ix_messages_due", "messages", ["due"])
    op.add_column("consents", sa.Column("reminded_at", sa.BigInteger(), nullable=True))
    op.create_index("ix_consents_valid_until", "consents", ["valid_until"])
    op.create_table(
        "send_refusals",
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("sender_unit", sa.String(64), nullable=False),
        sa.Column("recipient_unit", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "month",
            "sender_unit",
            "recipient_unit",
            "category",
            "purpose",
            "code",
            name="pk_send_refusals",
        ),
    )


def downgrade() -> None:
    op.drop_table("send_refusals")
    with op.batch_alter_table("consents") as batch:
        batch.drop_index("ix_consents_valid_until")
        batch.drop_column("reminded_at")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_due")
        batch.drop_column("escalated_at")

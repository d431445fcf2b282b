"""A consent's end is an end: why a pending message ended (additive).

messages.end_reason: the reason code of an ending without a receipt (``not_collected``,
``consent_ended``, a withdrawal code, ``recalled``), shown in the message status.

A nullable column only: an instance still running 0002 code keeps working while another
migrates (rolling upgrade), and nothing is rewritten. Messages that ended before this
revision keep ``NULL`` (their reason is in the audit trail).

Revision ID: 0003_consent_end
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_consent_end"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("end_reason", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("end_reason")

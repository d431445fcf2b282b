"""Initial schema: directory, consents, messages, nonces, events, audit.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "directory_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_directory_entries"),
        sa.UniqueConstraint("hash", name="uq_directory_entries_hash"),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subject_ref", sa.String(64), nullable=False),
        sa.Column("recorded_by", sa.String(140), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.BigInteger(), nullable=False),
        sa.Column("valid_until", sa.BigInteger(), nullable=False),
        sa.Column("withdrawn_at", sa.BigInteger(), nullable=True),
        sa.Column("withdrawal_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consents"),
    )
    op.create_index("ix_consents_subject_ref", "consents", ["subject_ref"])
    op.create_table(
        "consent_parties",
        sa.Column("consent_id", sa.String(64), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consents.id"],
            name="fk_consent_parties_consent_id_consents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("consent_id", "unit", name="pk_consent_parties"),
    )
    op.create_index("ix_consent_parties_unit", "consent_parties", ["unit"])
    op.create_table(
        "messages",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("sender_kid", sa.String(140), nullable=False),
        sa.Column("sender_unit", sa.String(64), nullable=False),
        sa.Column("recipient_unit", sa.String(64), nullable=False),
        sa.Column("consent_id", sa.String(64), nullable=False),
        sa.Column("consent_version", sa.Integer(), nullable=False),
        sa.Column("subject_ref", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("header_hash", sa.String(64), nullable=False),
        sa.Column("envelope_hash", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.Column("due", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_changed_at", sa.BigInteger(), nullable=False),
        sa.Column("accepted_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.Column("handed_over_at", sa.BigInteger(), nullable=True),
        sa.Column("blob_key", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
    )
    for column in ("sender_unit", "recipient_unit", "consent_id", "expires", "state"):
        op.create_index(f"ix_messages_{column}", "messages", [column])
    op.create_table(
        "message_recipients",
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("kid", sa.String(140), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_message_recipients_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "kid", name="pk_message_recipients"),
    )
    op.create_index("ix_message_recipients_kid", "message_recipients", ["kid"])
    op.create_table(
        "receipts",
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("receipt_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_receipts_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name="pk_receipts"),
    )
    op.create_table(
        "nonces",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("keyid", sa.String(140), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nonces"),
        sa.UniqueConstraint("keyid", "nonce", name="uq_nonces_keyid_nonce"),
    )
    op.create_index("ix_nonces_created", "nonces", ["created"])
    op.create_table(
        "events",
        sa.Column("seq", AutoId, autoincrement=True, nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("device", sa.String(140), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
    )
    op.create_index("ix_events_unit_seq", "events", ["unit", "seq"])
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_entries"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("signer", sa.String(140), nullable=False),
        sa.Column("sig", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("size", name="pk_audit_checkpoints"),
    )


def downgrade() -> None:
    for table in (
        "audit_checkpoints",
        "audit_entries",
        "events",
        "nonces",
        "receipts",
        "message_recipients",
        "messages",
        "consent_parties",
        "consents",
        "directory_entries",
    ):
        op.drop_table(table)

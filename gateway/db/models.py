"""Every table of the gateway (SQLAlchemy 2 declarative), portable SQLite ↔ PostgreSQL.

Portability choices: times are integer Unix seconds (no time-zone surprises between the
two engines), hashes are lower-case hex text, JSON documents are canonical JSON text
(what was signed is stored byte for byte; a JSON column type would re-serialise it).
The migrations (``0001_initial``, ``0002_deadlines``, ``0003_consent_end``,
``0004_exposure``, ``0005_webhooks``, ``0006_shared_blobs``) create exactly this schema; a
test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL wants BIGINT.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

KID = 140  # unit(64) / name(64) / version(6) plus separators
UNIT = 64
HEX = 64

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class DirectoryEntryRow(Base):
    """The key directory as admins signed it; the in-memory Directory is rebuilt from it."""

    __tablename__ = "directory_entries"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(HEX), unique=True)
    body_json: Mapped[str] = mapped_column(Text)


class ConsentRow(Base):
    __tablename__ = "consents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    subject_ref: Mapped[str] = mapped_column(String(HEX), index=True)
    recorded_by: Mapped[str] = mapped_column(String(KID))
    record_json: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[int] = mapped_column(BigInteger)
    # Indexed for the consent-ending reminder scan (0002).
    valid_until: Mapped[int] = mapped_column(BigInteger, index=True)
    withdrawn_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    withdrawal_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # When the recording unit was reminded that the consent ends soon (0002). Set by a
    # conditional update, so two gateway instances remind once.
    reminded_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ConsentParty(Base):
    __tablename__ = "consent_parties"
    consent_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("consents.id", ondelete="CASCADE"), primary_key=True
    )
    unit: Mapped[str] = mapped_column(String(UNIT), primary_key=True, index=True)


class MessageRow(Base):
    __tablename__ = "messages"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sender_kid: Mapped[str] = mapped_column(String(KID))
    sender_unit: Mapped[str] = mapped_column(String(UNIT), index=True)
    recipient_unit: Mapped[str] = mapped_column(String(UNIT), index=True)
    consent_id: Mapped[str] = mapped_column(String(64), index=True)
    consent_version: Mapped[int] = mapped_column(Integer)
    subject_ref: Mapped[str] = mapped_column(String(HEX))
    category: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    header_hash: Mapped[str] = mapped_column(String(HEX))
    envelope_hash: Mapped[str] = mapped_column(String(HEX))
    size: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[int] = mapped_column(BigInteger)
    expires: Mapped[int] = mapped_column(BigInteger, index=True)
    # Indexed for the escalation scan (0002); None: the flow has no deadline.
    due: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_changed_at: Mapped[int] = mapped_column(BigInteger)
    accepted_at: Mapped[int] = mapped_column(BigInteger)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    handed_over_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    blob_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # When the overdue handover was escalated (0002). Set by a conditional update in
    # the same transaction as the events and the audit entry: escalated once.
    escalated_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Why a pending message ended without a receipt (0003): ``not_collected``,
    # ``consent_ended`` or the withdrawal's reason code. A code, never free text.
    end_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # When a recipient key of the pending message was revoked (0004): whoever holds that
    # key (a lost laptop) may read it; the sender and the recipient unit were told.
    exposed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SendRefusalCount(Base):
    """Refused sends counted per month and flow, for the follow-up figures (0002).

    A counter, not a row per refusal, and the month rather than a time: there is no
    message id, kid, pseudonym or instant to link a count back to one request (threat:
    the de-identified report table joined with the audit trail to single out a person).
    Category and purpose are vocabulary codes; a unit the directory does not know is
    stored as ``unknown`` (the header is the sender's free choice).
    """

    __tablename__ = "send_refusals"
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM, Stockholm
    sender_unit: Mapped[str] = mapped_column(String(UNIT), primary_key=True)
    recipient_unit: Mapped[str] = mapped_column(String(UNIT), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class MessageRecipient(Base):
    """Recipient kids of a message; deleted together with the content."""

    __tablename__ = "message_recipients"
    message_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    kid: Mapped[str] = mapped_column(String(KID), primary_key=True, index=True)
    # Set when this recipient key was revoked while the message was pending (0004).
    exposed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ReceiptRow(Base):
    __tablename__ = "receipts"
    message_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    receipt_json: Mapped[str] = mapped_column(Text)
    # The directory size when the gateway verified the receipt (0004): the position to
    # verify it at again after the signer's key was rotated or revoked.
    directory_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class NonceRow(Base):
    """Request nonces seen within the clock-skew window (replay defence)."""

    __tablename__ = "nonces"
    __table_args__ = (UniqueConstraint("keyid", "nonce"),)
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    keyid: Mapped[str] = mapped_column(String(KID))
    nonce: Mapped[str] = mapped_column(String(128))
    created: Mapped[int] = mapped_column(BigInteger, index=True)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_unit_seq", "unit", "seq"),)
    seq: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    unit: Mapped[str] = mapped_column(String(UNIT))
    device: Mapped[str | None] = mapped_column(String(KID), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)
    data_json: Mapped[str] = mapped_column(Text)


class AuditEntryRow(Base):
    """Append-only, hash-chained audit log (never updated, never deleted)."""

    __tablename__ = "audit_entries"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(HEX))
    created: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(64))
    data_json: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(HEX))


class AuditCheckpointRow(Base):
    __tablename__ = "audit_checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    head: Mapped[str] = mapped_column(String(HEX))
    created: Mapped[int] = mapped_column(BigInteger)
    signer: Mapped[str] = mapped_column(String(KID))
    sig: Mapped[str] = mapped_column(String(128))


class WebhookRow(Base):
    """A unit's registered endpoint. ``secret`` signs deliveries (Standard Webhooks,
    HMAC-SHA256); ``after_seq`` is the last event seq before registration (older events
    are not delivered)."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit: Mapped[str] = mapped_column(String(UNIT), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(KID))
    created: Mapped[int] = mapped_column(BigInteger)
    after_seq: Mapped[int] = mapped_column(BigInteger)


class WebhookDeliveryRow(Base):
    """One event for one webhook: pending → delivered | failed (after the last try)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # One notification per (kind, message) per webhook, however many of the unit's
        # devices the event was addressed to; also what makes enqueueing idempotent.
        UniqueConstraint("webhook_id", "dedupe"),
        Index("ix_webhook_deliveries_state_next_at", "state", "next_at"),
    )
    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhooks.id", ondelete="CASCADE")
    )
    event_seq: Mapped[int] = mapped_column(BigInteger)
    dedupe: Mapped[str] = mapped_column(String(128))  # "kind:message_id" or "kind:#seq"
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_at: Mapped[int] = mapped_column(BigInteger)
    claimed_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(64), nullable=True)
    done_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class BlobUploadRow(Base):
    """An upload into the PostgreSQL blob store that is not yet decided
    (``gateway.blobs_pg``): its chunks exist, no message row owns them yet. ``heartbeat``
    (the owner's clock, Unix seconds) is what the sweep's "owner is dead" rests on."""

    __tablename__ = "blob_uploads"
    blob_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(32))
    started: Mapped[int] = mapped_column(BigInteger)
    heartbeat: Mapped[int] = mapped_column(BigInteger, index=True)


class BlobChunkRow(Base):
    """One piece (at most ``gateway.blobs_pg.CHUNK_BYTES``) of an envelope, in order."""

    __tablename__ = "blob_chunks"
    blob_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)

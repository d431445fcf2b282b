"""What the SDK hands back: small frozen records, no key material, no content."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keys.protocol.envelope import EnvelopeHeader
from keys.protocol.receipt import Receipt


@dataclass(frozen=True)
class SendResult:
    """The gateway accepted the envelope (``replayed``: it already had this very one)."""

    message_id: str
    status: int  # 201 accepted now, 200 the original answer to an idempotent retry
    replayed: bool
    header_hash: str  # hH, hex: what the recipient's receipt must name
    recipients: tuple[str, ...]  # the kids the envelope was sealed to
    # When the gateway stops handing it out: the signed header's expiry, or earlier when
    # the consent ends first (the gateway caps it there and says so in its answer).
    expires: int
    size: int  # envelope bytes on the wire (what the padding lets the gateway see)
    attempts: int
    answer: dict[str, Any] = field(repr=False)
    # From the gateway's answer: when it accepted the envelope and when the handover is
    # due under its deadline policy (None: the flow has no deadline). The gateway's
    # word, not signed; the due time is a reminder schedule, not a security property.
    accepted_at: int | None = None
    due: int | None = None
    # The expiry this device signed into the header (``expires`` may be earlier).
    requested_expires: int | None = None


@dataclass(frozen=True)
class OpenedMessage:
    """A message verified against the directory, decrypted and renamed into ``path``.

    ``subject_ref`` is a pseudonym; it is left out of ``repr`` all the same, so a
    logged result does not link log lines to one person.
    """

    message_id: str
    path: Path
    content_length: int
    sender: str  # signing kid, verified against the directory
    sender_fingerprint: str
    header_hash: str
    opened_with: str  # which of this device's key versions held the wrapped key
    header: EnvelopeHeader = field(repr=False)
    # This device had opened the message before and re-opened it on request: the same
    # envelope (same hH), not a new message.
    reopened: bool = False

    @property
    def consent_id(self) -> str:
        return self.header.consent_id

    @property
    def category(self) -> str:
        return self.header.category

    @property
    def purpose(self) -> str:
        return self.header.purpose

    @property
    def subject_ref(self) -> str:
        return self.header.subject_ref


@dataclass(frozen=True)
class VerifiedReceipt:
    """A handover receipt whose signature verified with the recipient's directory key.

    ``key_since``: None when the signing key is still trusted today; ``revoked`` or
    ``destroyed`` when it was verified against the directory as it stood when the
    receipt was stored, the key having been revoked or rotated away since. Either way
    the receipt is proof of the handover.
    """

    receipt: Receipt
    recipient_fingerprint: str
    key_since: str | None = None
    directory_size: int | None = None  # the position it verified at (None: today's)

    @property
    def message_id(self) -> str:
        return self.receipt.message_id

    @property
    def recipient(self) -> str:
        return str(self.receipt.recipient)

    @property
    def accepted(self) -> bool:
        return self.receipt.is_accepted

    @property
    def reason(self) -> str | None:
        return self.receipt.reason

    @property
    def received_at(self) -> int:
        return self.receipt.received_at


@dataclass(frozen=True)
class PushEvent:
    """One event of the device's stream: *that* something happened, never content."""

    seq: int
    kind: str  # inbox.new, outbox.handed_over, outbox.expired, ...
    message_id: str | None
    created: int
    data: dict[str, Any]

    @classmethod
    def from_json(cls, obj: Any) -> PushEvent:
        from clients.errors import UnexpectedResponse

        if not isinstance(obj, dict):
            raise UnexpectedResponse("an event is a JSON object")
        seq, kind, created = obj.get("seq"), obj.get("kind"), obj.get("created")
        message_id, data = obj.get("message_id"), obj.get("data", {})
        if (
            type(seq) is not int
            or not isinstance(kind, str)
            or type(created) is not int
            or not (message_id is None or isinstance(message_id, str))
            or not isinstance(data, dict)
        ):
            raise UnexpectedResponse("an event is {seq, kind, message_id, created, data}")
        return cls(seq, kind, message_id, created, data)

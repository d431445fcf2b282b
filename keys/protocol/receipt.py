"""Handover receipts: a recipient device's signed statement that it took a message.

The receipt is the proof DOMAIN.md asks for ("SAV makes sure the district received
it"): signed by the recipient device, it cannot be made up by the gateway (threat: a
gateway or operator claiming a handover that never happened, then deleting the content)
and it names the exact envelope by its header hash ``hH``, so a receipt for one message
cannot be replayed as the receipt for another (threat: re-use of an old receipt).

Wire form (``schemas/receipt.json``)::

    {"v":1, "message_id", "header_hash": hex(hH), "recipient": kid,
     "status": "accepted"|"rejected", "reason": code|null, "received_at": int, "sig"}

``sig = Ed25519(recipient device key, b"stafett/v1/rcpt" ‖ canonical(receipt - sig))``.
A rejection carries a reason *code* (``wrong_district``), never free text: the receipt
is stored by the gateway, which must not hold case content.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from keys.crypto.canonical import NotCanonical, b64d, b64e, canonical_json
from keys.crypto.keypairs import SIGNATURE_BYTES, KeyId, SigningKey, VerifyKey
from keys.errors import (
    KeyIdInvalid,
    ReceiptInvalid,
    ReceiptMismatch,
    ReceiptSignatureInvalid,
    SignatureInvalid,
)

RECEIPT_VERSION = 1
SIG_DOMAIN = b"stafett/v1/rcpt"
STATUSES = frozenset({"accepted", "rejected"})
FIELDS = frozenset(
    {"v", "message_id", "header_hash", "recipient", "status", "reason", "received_at", "sig"}
)

_MAX_INT = 2**53 - 1
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# A code, not prose: free text here would be case content stored at the gateway.
_REASON = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Receipt:
    """A structurally valid handover receipt."""

    message_id: str
    header_hash: bytes
    recipient: KeyId
    status: str
    reason: str | None
    received_at: int
    sig: bytes

    @property
    def is_accepted(self) -> bool:
        return self.status == "accepted"

    def unsigned_json(self) -> dict[str, Any]:
        return {
            "v": RECEIPT_VERSION,
            "message_id": self.message_id,
            "header_hash": self.header_hash.hex(),
            "recipient": str(self.recipient),
            "status": self.status,
            "reason": self.reason,
            "received_at": self.received_at,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.unsigned_json(), "sig": b64e(self.sig)}

    def signed_bytes(self) -> bytes:
        return SIG_DOMAIN + canonical_json(self.unsigned_json())


def make_receipt(
    *,
    message_id: str,
    header_hash: bytes,
    recipient: KeyId | str,
    status: str,
    reason: str | None,
    received_at: int,
    key: SigningKey,
) -> dict[str, Any]:
    """Sign a receipt with the recipient device's key and return its JSON form."""
    draft = {
        "v": RECEIPT_VERSION,
        "message_id": message_id,
        "header_hash": header_hash.hex() if isinstance(header_hash, bytes) else header_hash,
        "recipient": str(recipient),
        "status": status,
        "reason": reason,
        "received_at": received_at,
        "sig": b64e(bytes(SIGNATURE_BYTES)),
    }
    unsigned = parse_receipt(draft)  # the same checks a verifier runs, before signing
    return replace(unsigned, sig=key.sign(unsigned.signed_bytes())).to_json()


def parse_receipt(obj: Mapping[str, Any]) -> Receipt:
    """Check a receipt's structure (not its signature); raise :class:`ReceiptInvalid`."""
    if not isinstance(obj, Mapping) or set(obj) != FIELDS:
        raise ReceiptInvalid("a receipt has exactly the fields of schemas/receipt.json")
    if type(obj["v"]) is not int or obj["v"] != RECEIPT_VERSION:
        raise ReceiptInvalid("unsupported receipt version")
    message_id = obj["message_id"]
    if not isinstance(message_id, str) or not _UUID.fullmatch(message_id):
        raise ReceiptInvalid("message_id must be a lower-case UUID")
    header_hash = obj["header_hash"]
    if not isinstance(header_hash, str) or not _HEX64.fullmatch(header_hash):
        raise ReceiptInvalid("header_hash must be 64 lower-case hex characters")
    if not isinstance(obj["recipient"], str):
        raise ReceiptInvalid("recipient must be a key id")
    try:
        recipient = KeyId.parse(obj["recipient"])
    except KeyIdInvalid as exc:
        raise ReceiptInvalid("recipient must be a key id") from exc
    status = obj["status"]
    if not isinstance(status, str) or status not in STATUSES:
        raise ReceiptInvalid("status must be 'accepted' or 'rejected'")
    reason = obj["reason"]
    if status == "accepted" and reason is not None:
        raise ReceiptInvalid("an accepted receipt carries no reason")
    if status == "rejected" and (not isinstance(reason, str) or not _REASON.fullmatch(reason)):
        # a rejection without a reason leaves the sender unable to act on it
        raise ReceiptInvalid("a rejected receipt carries a snake_case reason code")
    received_at = obj["received_at"]
    if type(received_at) is not int or not 0 <= received_at <= _MAX_INT:
        raise ReceiptInvalid("received_at must be an integer Unix time")
    if not isinstance(obj["sig"], str):
        raise ReceiptInvalid("sig must be base64")
    try:
        sig = b64d(obj["sig"], size=SIGNATURE_BYTES)
    except NotCanonical as exc:
        raise ReceiptInvalid("sig must be base64 of 64 bytes") from exc
    return Receipt(
        message_id=message_id,
        header_hash=bytes.fromhex(header_hash),
        recipient=recipient,
        status=status,
        reason=reason,
        received_at=received_at,
        sig=sig,
    )


def verify_receipt(
    receipt: Mapping[str, Any],
    key: VerifyKey,
    *,
    expected_message_id: str,
    expected_header_hash: bytes | str,
    expected_recipients: Collection[str] | None = None,
) -> Receipt:
    """Verify a receipt for one message and return it typed.

    ``key`` is the directory's verify key for ``receipt["recipient"]`` (the caller's
    lookup). ``expected_header_hash`` is ``hH`` of the stored envelope: the binding that
    stops a receipt for one envelope being presented for another with the same id.
    ``expected_recipients`` (kids the envelope was sealed to), when given, refuses a
    receipt signed by a device that was never a recipient.
    """
    parsed = parse_receipt(receipt)
    try:
        key.verify(parsed.signed_bytes(), parsed.sig)
    except SignatureInvalid as exc:
        raise ReceiptSignatureInvalid() from exc
    expected = (
        expected_header_hash
        if isinstance(expected_header_hash, bytes)
        else _hex_or_empty(expected_header_hash)
    )
    if parsed.message_id != expected_message_id:
        raise ReceiptMismatch("the receipt is for another message")
    if not hmac.compare_digest(parsed.header_hash, expected):
        raise ReceiptMismatch("the receipt is for another envelope header")
    if expected_recipients is not None and not _was_recipient(
        parsed.recipient, expected_recipients
    ):
        raise ReceiptMismatch("the receipt is signed by a device that was not a recipient")
    return parsed


def _hex_or_empty(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""  # compares unequal to every 32-byte hash


def _was_recipient(signer: KeyId, sealed_to: Collection[str]) -> bool:
    """The signer is a sealed-to kid, or a later version of that device: a device that
    rotated after the message was sealed signs its receipt with its current key."""
    for text in sealed_to:
        kid = KeyId.parse(text)
        if kid.device == signer.device and signer.version >= kid.version:
            return True
    return False

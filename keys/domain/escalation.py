"""Escalation: which overdue handovers to raise, and to whom. Pure; ``now`` is passed in.

When a message's due time passes while it is still pending (no receipt, not expired,
withdrawn or recalled), one escalation event goes to the sending device and to the
recipient unit's designated contact devices, and the decision is audited.

"Once" is the wiring's part, and must be enforced by the database, not by this
selection: the job marks the message with a conditional update (``UPDATE messages SET
escalated_at = :now WHERE id = :id AND escalated_at IS NULL``) in the same transaction
as the events and the audit entry, and emits only when that update touched a row.
Two gateway instances running the job at once then escalate each message once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from keys.crypto.ids import DeviceId, KeyId
from keys.domain.lifecycle import is_pending
from keys.errors import KeysError


@dataclass(frozen=True)
class DueMessage:
    """What escalation needs to know of a message (a projection of its row)."""

    message_id: str
    sender_kid: str
    sender_unit: str
    recipient_unit: str
    state: str
    due: int | None
    escalated_at: int | None = None
    recipient_kids: tuple[str, ...] = ()  # the devices the sender addressed


class DeviceFlags(NamedTuple):
    """A device as the directory lists it: ``("so-nordost/anna", contact, revoked)``."""

    device: str
    contact: bool
    revoked: bool


Role = Literal["sender", "sender_contact", "recipient_contact", "recipient_addressed"]


@dataclass(frozen=True)
class Notice:
    unit: str
    device: str  # unit/name
    role: Role


@dataclass(frozen=True)
class Escalation:
    message_id: str
    due: int
    notices: tuple[Notice, ...]
    # False when the recipient unit has no active contact device: the wiring audits it
    # so an administrator designates one (otherwise escalations reach fewer people).
    recipient_has_contact: bool


def is_overdue(message: DueMessage, *, now: int) -> bool:
    """Due has passed (inclusive, like expiry), still pending, and not escalated yet."""
    return (
        message.due is not None
        and now >= message.due
        and message.escalated_at is None
        # A handed-over, rejected, expired, withdrawn or recalled message has had its
        # answer; escalating it would tell a unit to chase content that no longer exists.
        and is_pending(message.state)
    )


def due_for_escalation(messages: Iterable[DueMessage], now: int) -> list[DueMessage]:
    """The overdue messages, oldest due first (ties by id, so the order is stable)."""
    overdue = [m for m in messages if is_overdue(m, now=now)]
    return sorted(overdue, key=lambda m: (m.due, m.message_id))


def escalation_for(
    message: DueMessage,
    recipient_devices: Iterable[DeviceFlags | tuple[str, bool, bool]],
    sender_devices: Iterable[DeviceFlags | tuple[str, bool, bool]] = (),
) -> Escalation:
    """Who is told that ``message`` is overdue.

    - The sending device, unless the directory lists it as revoked; then the sender
      unit's contact devices instead, so the sending unit still learns of it.
    - The recipient unit's active contact devices. If it has none, the devices the
      sender addressed (still active) instead: they are already within the small
      circle that may see this case, whereas "every device of the unit" is not
      (DOMAIN.md: only a very limited number of officers may see a defector's case).

    Devices are only ever taken from their own unit: a list that mixes units (a wiring
    bug) must not send one unit's case metadata to a device of another.
    """
    if message.due is None:
        raise ValueError("a message without a due time is never escalated")
    recipients = _flags(recipient_devices, message.recipient_unit)
    senders = _flags(sender_devices, message.sender_unit)
    notices: list[Notice] = []

    sender_device = _device_of(message.sender_kid)
    if sender_device is not None and sender_device.startswith(message.sender_unit + "/"):
        sender_flags = senders.get(sender_device)
        if sender_flags is None or not sender_flags.revoked:
            notices.append(Notice(message.sender_unit, sender_device, "sender"))
        else:
            notices.extend(
                Notice(message.sender_unit, d, "sender_contact")
                for d, f in sorted(senders.items())
                if f.contact and not f.revoked
            )

    contacts = [d for d, f in sorted(recipients.items()) if f.contact and not f.revoked]
    notices.extend(Notice(message.recipient_unit, d, "recipient_contact") for d in contacts)
    if not contacts:
        addressed = {_device_of(kid) for kid in message.recipient_kids}
        notices.extend(
            Notice(message.recipient_unit, d, "recipient_addressed")
            for d, f in sorted(recipients.items())
            # Deny by default: an addressed device the directory does not list is skipped.
            if d in addressed and not f.revoked
        )
    return Escalation(message.message_id, message.due, tuple(notices), bool(contacts))


def _flags(
    devices: Iterable[DeviceFlags | tuple[str, bool, bool]], unit: str
) -> dict[str, DeviceFlags]:
    out: dict[str, DeviceFlags] = {}
    for entry in devices:
        flags = DeviceFlags(*entry)
        try:
            parsed = DeviceId.parse(flags.device)
        except KeysError:
            continue  # not a device id: never a notification target
        if parsed.unit == unit:
            out[flags.device] = flags
    return out


def _device_of(kid: str) -> str | None:
    try:
        return str(KeyId.parse(kid).device)
    except KeysError:
        return None

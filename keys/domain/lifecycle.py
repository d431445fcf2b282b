"""Message lifecycle: which state a message is in and what may happen to it next.

::

    accepted ──deliver──▶ delivered ──hand_over──▶ handed_over   (signed receipt, accepted)
        │                     │     └───reject───▶ rejected      (signed receipt, rejected)
        └──expire/withdraw/recall──┴──▶ expired | withdrawn | recalled

Content exists only while a message is pending (``accepted``/``delivered``); every
terminal state means the blob and the wrapped keys are gone. Transitions out of a
terminal state are refused with ``message_state_conflict`` (threats: a late receipt
"handing over" content that already expired and was reported to the sender as not
handed over; a recall after the recipient took the content into its case file, which
would tell the sender a handover was undone when it was not).

``rejected`` extends the states in DESIGN.md: a recipient that signs a rejection
(``wrong_district``) ends the handover without taking the content; the sender is told
the reason and can send again to the right unit.
"""

from __future__ import annotations

from enum import StrEnum

from keys.protocol.refusals import InvalidTransition, TtlInvalid


class MessageState(StrEnum):
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    HANDED_OVER = "handed_over"
    REJECTED = "rejected"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    RECALLED = "recalled"


class MessageEvent(StrEnum):
    DELIVER = "deliver"  # a recipient device fetched the envelope
    HAND_OVER = "hand_over"  # a recipient device posted an "accepted" receipt
    REJECT = "reject"  # a recipient device posted a "rejected" receipt
    EXPIRE = "expire"  # the TTL passed with nobody handing it over
    WITHDRAW = "withdraw"  # the consent it was sent under was withdrawn or ended
    RECALL = "recall"  # the sender took it back before handover


PENDING = frozenset({MessageState.ACCEPTED, MessageState.DELIVERED})
TERMINAL = frozenset(MessageState) - PENDING

_ENDINGS = {
    MessageEvent.EXPIRE: MessageState.EXPIRED,
    MessageEvent.WITHDRAW: MessageState.WITHDRAWN,
    MessageEvent.RECALL: MessageState.RECALLED,
}
_TRANSITIONS: dict[tuple[MessageState, MessageEvent], MessageState] = {
    (MessageState.ACCEPTED, MessageEvent.DELIVER): MessageState.DELIVERED,
    # Several recipient devices may each fetch the envelope: it stays delivered.
    (MessageState.DELIVERED, MessageEvent.DELIVER): MessageState.DELIVERED,
    # A receipt names hH, which a device only has after fetching: not from accepted.
    (MessageState.DELIVERED, MessageEvent.HAND_OVER): MessageState.HANDED_OVER,
    (MessageState.DELIVERED, MessageEvent.REJECT): MessageState.REJECTED,
    **{(state, event): end for state in PENDING for event, end in _ENDINGS.items()},
}


def transition(state: MessageState | str, event: MessageEvent | str) -> MessageState:
    """The state after ``event``; raises :class:`InvalidTransition` if not allowed.

    Unknown state or event names are programming errors and raise ``ValueError``.
    """
    key = (MessageState(state), MessageEvent(event))
    try:
        return _TRANSITIONS[key]
    except KeyError:
        raise InvalidTransition(f"a message that is {key[0]} cannot be {key[1]}") from None


def is_pending(state: MessageState | str) -> bool:
    """True while the message still holds content and can be handed over."""
    return MessageState(state) in PENDING


def is_terminal(state: MessageState | str) -> bool:
    return MessageState(state) in TERMINAL


def is_expired(expires: int, *, now: int) -> bool:
    """Expiry is inclusive: at ``expires`` the content is no longer handed out."""
    return now >= expires


# Why a pending message ended without a receipt (event data, audit, message status).
NOT_COLLECTED = "not_collected"  # its own expiry passed
CONSENT_ENDED = "consent_ended"  # the consent it was accepted under reached valid_until


def cap_at_consent_end(expires: int, consent_valid_until: int) -> int:
    """The expiry the gateway enforces: never after the consent's end.

    The signed header keeps the sender's ``expires`` (the gateway cannot change it);
    the gateway stores and answers the earlier of the two, so the sender is told at
    send time how long the message really waits (threat: content held, or believed
    to be held, past the end of the consent that allowed it).
    """
    return min(expires, consent_valid_until)


def ending_due(
    *, expires: int, consent_valid_until: int | None, now: int
) -> tuple[MessageEvent, str] | None:
    """How a pending message ends at ``now`` without a receipt, if it does.

    The consent's end wins over the message's own expiry when both passed (a capped
    expiry equals the consent's end): the sender is told the consent ended, which is
    what stopped the handover. ``None`` for ``consent_valid_until``: unknown consent,
    only the expiry counts.
    """
    if consent_valid_until is not None and now >= consent_valid_until:
        return MessageEvent.WITHDRAW, CONSENT_ENDED
    if is_expired(expires, now=now):
        return MessageEvent.EXPIRE, NOT_COLLECTED
    return None


def effective_expiry(
    created: int,
    requested_expires: int | None,
    *,
    now: int,
    max_ttl_s: int,
    clock_skew_s: int = 300,
) -> int:
    """The expiry the gateway will enforce; raises :class:`TtlInvalid` if unacceptable.

    ``None`` asks for the policy maximum. A request is refused, not silently capped:
    ``expires`` is inside the signed header, so the gateway cannot change it, and a
    sender must not believe a message waits longer than it will (threat: content held
    beyond the retention the city decided).
    """
    for value in (created, requested_expires):
        if value is not None and (type(value) is not int or value < 0):
            raise TtlInvalid("created and expires must be integer Unix times")
    if created > now + clock_skew_s:
        raise TtlInvalid("the message is created in the future")
    if requested_expires is None:
        return created + max_ttl_s
    if requested_expires <= now or requested_expires <= created:
        raise TtlInvalid("the message expires in the past")
    if requested_expires > created + max_ttl_s:
        raise TtlInvalid(f"the message may wait at most {max_ttl_s} seconds")
    return requested_expires

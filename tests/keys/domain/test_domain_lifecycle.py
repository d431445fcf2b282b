"""Message lifecycle: the whole transition table, and the TTL rules."""

from __future__ import annotations

import itertools

import pytest
from domain_factories import DAY, NOW

from keys.domain.lifecycle import (
    PENDING,
    TERMINAL,
    MessageEvent,
    MessageState,
    effective_expiry,
    is_expired,
    is_pending,
    is_terminal,
    transition,
)
from keys.protocol.refusals import InvalidTransition, TtlInvalid

S, E = MessageState, MessageEvent

# The complete table: every (state, event) not listed here must be refused.
ALLOWED = {
    (S.ACCEPTED, E.DELIVER): S.DELIVERED,
    (S.DELIVERED, E.DELIVER): S.DELIVERED,
    (S.DELIVERED, E.HAND_OVER): S.HANDED_OVER,
    (S.DELIVERED, E.REJECT): S.REJECTED,
    (S.ACCEPTED, E.EXPIRE): S.EXPIRED,
    (S.DELIVERED, E.EXPIRE): S.EXPIRED,
    (S.ACCEPTED, E.WITHDRAW): S.WITHDRAWN,
    (S.DELIVERED, E.WITHDRAW): S.WITHDRAWN,
    (S.ACCEPTED, E.RECALL): S.RECALLED,
    (S.DELIVERED, E.RECALL): S.RECALLED,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, E)))
def test_transition_table(state: MessageState, event: MessageEvent) -> None:
    expected = ALLOWED.get((state, event))
    if expected is None:
        with pytest.raises(InvalidTransition) as info:
            transition(state, event)
        assert info.value.code == "message_state_conflict"
        assert info.value.status == 409
    else:
        assert transition(state, event) is expected
        assert transition(state.value, event.value) is expected


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.EXPIRED, E.HAND_OVER),  # receipt after expiry
        (S.HANDED_OVER, E.RECALL),  # recall after handover
        (S.WITHDRAWN, E.DELIVER),  # fetch after withdrawal
        (S.HANDED_OVER, E.WITHDRAW),  # withdrawal does not undo a handover
        (S.ACCEPTED, E.HAND_OVER),  # receipt without fetching the envelope
        (S.RECALLED, E.EXPIRE),
    ],
)
def test_named_conflicts(state: MessageState, event: MessageEvent) -> None:
    with pytest.raises(InvalidTransition):
        transition(state, event)


def test_pending_and_terminal_partition_the_states() -> None:
    assert set(S) == PENDING | TERMINAL
    assert not PENDING & TERMINAL
    assert [s for s in S if is_pending(s)] == [S.ACCEPTED, S.DELIVERED]
    assert all(is_terminal(s) != is_pending(s) for s in S)
    assert is_pending("delivered")


def test_every_terminal_state_is_a_dead_end() -> None:
    for state, event in itertools.product(TERMINAL, E):
        with pytest.raises(InvalidTransition):
            transition(state, event)


def test_unknown_names_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="sent"):
        transition("sent", "deliver")
    with pytest.raises(ValueError, match="open"):
        transition("accepted", "open")


def test_expiry_is_inclusive() -> None:
    assert not is_expired(NOW, now=NOW - 1)
    assert is_expired(NOW, now=NOW)


# --- TTL --------------------------------------------------------------------------------------
MAX = 14 * DAY


def test_no_request_gets_the_maximum() -> None:
    assert effective_expiry(NOW, None, now=NOW, max_ttl_s=MAX) == NOW + MAX


def test_a_request_within_policy_is_kept() -> None:
    assert effective_expiry(NOW, NOW + DAY, now=NOW, max_ttl_s=MAX) == NOW + DAY
    assert effective_expiry(NOW, NOW + MAX, now=NOW, max_ttl_s=MAX) == NOW + MAX


@pytest.mark.parametrize(
    ("created", "expires"),
    [
        (NOW, NOW - 1),  # past
        (NOW, NOW),  # already at expiry
        (NOW - 10, NOW - 5),
        (NOW, NOW + MAX + 1),  # beyond policy
        (NOW - DAY, NOW + MAX),  # beyond policy counted from created
        (NOW + 3600, NOW + 7200),  # created in the future
        (NOW + 3600, None),
        (True, NOW + DAY),  # not an integer
        (NOW, -1),
    ],
)
def test_invalid_expiry_is_refused(created: int, expires: int | None) -> None:
    with pytest.raises(TtlInvalid) as info:
        effective_expiry(created, expires, now=NOW, max_ttl_s=MAX)
    assert info.value.code == "ttl_invalid"
    assert info.value.status == 422


def test_a_slightly_fast_sender_clock_is_tolerated() -> None:
    assert effective_expiry(NOW + 60, NOW + DAY, now=NOW, max_ttl_s=MAX) == NOW + DAY

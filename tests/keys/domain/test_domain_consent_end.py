"""A consent's end is an end: the pure rules (capped expiry, which ending, in force)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from domain_factories import DAY, NOW, consent
from hypothesis import given
from hypothesis import strategies as st

from keys.domain.consent import require_in_force
from keys.domain.lifecycle import (
    CONSENT_ENDED,
    NOT_COLLECTED,
    MessageEvent,
    cap_at_consent_end,
    ending_due,
)
from keys.protocol.refusals import ConsentExpired, ConsentUnknown, ConsentWithdrawn

times = st.integers(min_value=0, max_value=2**40)


@given(expires=times, until=times)
def test_the_capped_expiry_is_never_after_either(expires: int, until: int) -> None:
    capped = cap_at_consent_end(expires, until)
    assert capped <= expires
    assert capped <= until
    assert capped in (expires, until)


@given(expires=times, until=times, now=times)
def test_an_ending_is_due_exactly_when_a_deadline_passed(
    expires: int, until: int, now: int
) -> None:
    ending = ending_due(expires=expires, consent_valid_until=until, now=now)
    if now >= until:
        # The consent's end wins, also when the message's own expiry passed too.
        assert ending == (MessageEvent.WITHDRAW, CONSENT_ENDED)
    elif now >= expires:
        assert ending == (MessageEvent.EXPIRE, NOT_COLLECTED)
    else:
        assert ending is None


def test_a_capped_message_ends_because_the_consent_ended() -> None:
    until = NOW + DAY
    expires = cap_at_consent_end(NOW + 14 * DAY, until)
    assert ending_due(expires=expires, consent_valid_until=until, now=until) == (
        MessageEvent.WITHDRAW,
        CONSENT_ENDED,
    )
    assert ending_due(expires=expires, consent_valid_until=None, now=until) == (
        MessageEvent.EXPIRE,
        NOT_COLLECTED,
    )


def test_in_force_until_the_end_and_not_after_a_withdrawal() -> None:
    c = consent()
    until = c.record.valid_until
    assert until is not None
    require_in_force(c, now=until - 1)
    with pytest.raises(ConsentExpired):
        require_in_force(c, now=until)  # inclusive, like the expiry
    with pytest.raises(ConsentWithdrawn):
        require_in_force(
            replace(c, withdrawn_at=NOW, withdrawal_reason="subject_withdrew"), now=NOW
        )
    with pytest.raises(ConsentUnknown):
        require_in_force(None, now=NOW)

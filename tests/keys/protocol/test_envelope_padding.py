"""Padmé padding: the envelope size reveals O(log log n) bits, at ≤ 12 % overhead."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys.protocol.padding import (
    TRAILER_BYTES,
    is_padded_length,
    min_content_length,
    padded_length,
    padme,
)

lengths = st.integers(min_value=0, max_value=2**40)


def test_known_values() -> None:
    # From the PURBs paper's definition: round to E - S low bits zero.
    assert [padme(n) for n in (0, 1, 2, 9, 100, 1000, 65537)] == [0, 1, 2, 10, 104, 1024, 67584]
    assert padded_length(0) == 8
    assert padded_length(65528) == 65536  # content + trailer fill one chunk exactly


@given(lengths)
def test_padded_length_covers_content_and_trailer(n: int) -> None:
    p = padded_length(n)
    assert p >= n + TRAILER_BYTES
    assert p - (n + TRAILER_BYTES) <= (n + TRAILER_BYTES) * 0.12 + 1
    assert is_padded_length(p)


@given(lengths, lengths)
def test_padding_is_monotone(a: int, b: int) -> None:
    if a <= b:
        assert padded_length(a) <= padded_length(b)


@given(lengths)
def test_min_content_length_is_the_bucket_floor(n: int) -> None:
    p = padded_length(n)
    floor = min_content_length(p)
    assert floor <= n
    assert padded_length(floor) == p
    if floor > 0:
        assert padded_length(floor - 1) < p


@pytest.mark.parametrize("p", [0, 7, 9, 65537, 67583])
def test_non_padme_lengths_are_recognised(p: int) -> None:
    assert not is_padded_length(p)
    with pytest.raises(ValueError, match="Padmé"):
        min_content_length(p)

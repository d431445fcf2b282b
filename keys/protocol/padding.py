"""Padmé length-hiding padding for envelope bodies (protocol.md, "Envelope v1").

Threat: the gateway (or anyone on the path) learns the exact size of a document from
the size of its envelope, and sizes identify documents ("the 2-page threat
assessment"). Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files
and Communication with PURBs", PETS 2019) rounds a length up so that the padded length
reveals only O(log log n) bits, at a cost of at most ~12 % overhead.

The padded plaintext is ``content ‖ zeros ‖ u64 LE len(content)``; its total length
``P = padme(len(content) + 8)``. Every value padme produces is a fixed point of padme,
which is how a reader checks, from the framing alone, that ``P`` is well-formed.
"""

from __future__ import annotations

TRAILER_BYTES = 8  # u64 LE content length at the very end of the padded plaintext
MAX_CONTENT = 2**63 - 1  # keeps padme(len + 8) inside the u64 the trailer can express


def padme(length: int) -> int:
    """Round ``length`` up to the next Padmé bucket (the identity for lengths < 2)."""
    if length < 0:
        raise ValueError("length must be non-negative")
    if length < 2:
        return length
    e = length.bit_length() - 1  # floor(log2 L)
    s = e.bit_length()  # floor(log2 E) + 1
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


def padded_length(content_length: int) -> int:
    """Total plaintext length ``P`` for ``content_length`` bytes of content."""
    if not 0 <= content_length <= MAX_CONTENT:
        raise ValueError("content length out of range")
    return padme(content_length + TRAILER_BYTES)


def is_padded_length(total: int) -> bool:
    """True when ``total`` is a length :func:`padded_length` can produce."""
    return total >= TRAILER_BYTES and padme(total) == total


def min_content_length(total: int) -> int:
    """Smallest content length whose padded length is ``total`` (a valid ``P``).

    Bytes before this offset are content whatever the trailer says, so a reader only
    has to check for zero padding from here on.
    """
    if not is_padded_length(total):
        raise ValueError("not a Padmé length")
    # Binary search on the monotone function padded_length over [0, total - 8].
    lo, hi = 0, total - TRAILER_BYTES
    while lo < hi:
        mid = (lo + hi) // 2
        if padded_length(mid) >= total:
            hi = mid
        else:
            lo = mid + 1
    return lo

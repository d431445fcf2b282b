"""Every byte of an envelope matters: flips, cuts and appendages are all refused.

Each refusal must be a specific envelope error (a stable code), never a success, a
generic exception or a half-written output file.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from envelope_support import (
    Dissected,
    Parties,
    box_bytes,
    flip,
    refusal,
    region_of,
    seal_bytes,
    with_box,
)

from keys.errors import EnvelopeError
from keys.protocol.envelope import verify_envelope

# What a flipped byte in each region may legitimately be reported as.
ALLOWED = {
    "magic": {"envelope_malformed"},
    "hlen": {"envelope_malformed", "body_truncated", "envelope_header_invalid"},
    "header": {"envelope_header_invalid", "sender_unknown", "envelope_signature_invalid"},
    "wlen": {"envelope_malformed", "body_truncated"},
    "wrapped": {"envelope_malformed", "envelope_header_invalid", "envelope_signature_invalid"},
    "body": {"envelope_signature_invalid", "envelope_malformed", "body_truncated"},
    "signature": {"envelope_signature_invalid"},
}


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties()


@pytest.fixture(scope="module")
def sealed(parties: Parties) -> bytes:
    return seal_bytes(parties, "Hotbildsbedömning bifogas. ".encode() * 12)


@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_every_single_byte_flip_is_refused_with_a_specific_error(
    parties: Parties, sealed: bytes, tmp_path: Path, mask: int
) -> None:
    parsed = Dissected.parse(sealed)
    cipher = {i for start, end in parsed.cipher_ranges for i in range(start, end)}
    seen: dict[str, set[str]] = {}
    for offset in range(len(sealed)):
        region = region_of(parsed, offset)
        code = refusal(parties, tmp_path, flip(sealed, offset, mask))
        assert code in ALLOWED[region], (offset, region, code)
        if offset in cipher:  # ciphertext bytes are covered by the signature first
            assert code == "envelope_signature_invalid", (offset, code)
        seen.setdefault(region, set()).add(code)
    assert set(seen) == set(ALLOWED)


def test_the_gateway_check_refuses_the_same_flips(parties: Parties, sealed: bytes) -> None:
    parsed = Dissected.parse(sealed)
    for offset in range(len(sealed)):
        with pytest.raises(EnvelopeError) as caught:
            verify_envelope(io.BytesIO(flip(sealed, offset, 0x01)), parties.resolve)
        assert caught.value.code in ALLOWED[region_of(parsed, offset)]


def test_every_truncation_is_refused_as_truncated(
    parties: Parties, sealed: bytes, tmp_path: Path
) -> None:
    for length in range(len(sealed)):
        assert refusal(parties, tmp_path, sealed[:length]) == "body_truncated", length


def test_every_body_flip_behind_a_valid_signature_fails_authentication(
    parties: Parties, sealed: bytes, tmp_path: Path
) -> None:
    # The sender's signature is re-made over the altered body, so only secretstream
    # stands between the flip and the plaintext: it must refuse each one.
    parsed = Dissected.parse(sealed)
    total = len(parsed.ss_header) + sum(len(c) for c in parsed.chunks)
    for index in range(total):
        copy = Dissected.parse(sealed)
        if index < len(copy.ss_header):
            copy.ss_header = flip(copy.ss_header, index, 0x01)
        else:
            i = index - len(copy.ss_header)
            copy.chunks[0] = flip(copy.chunks[0], i, 0x01)
        code = refusal(parties, tmp_path, copy.resign(parties.sender))
        assert code == "body_chunk_invalid", index


def test_every_wrapped_key_flip_behind_a_valid_signature_is_refused(
    parties: Parties, sealed: bytes, tmp_path: Path
) -> None:
    parsed = Dissected.parse(sealed)
    entries = parsed.boxes()
    mine = next(i for i, e in enumerate(entries) if e["kid"] == str(parties.anna.kid))
    raw = box_bytes(entries[mine])
    for index in range(len(raw)):
        copy = Dissected.parse(sealed)
        changed = list(entries)
        changed[mine] = with_box(entries[mine], flip(raw, index, 0x01))
        copy.set_boxes(changed)
        code = refusal(parties, tmp_path, copy.resign(parties.sender))
        assert code == "wrapped_key_invalid", index


def test_appended_bytes_are_refused(parties: Parties, sealed: bytes, tmp_path: Path) -> None:
    for extra in (b"\x00", b"\x00\x00\x00\x00", sealed[-64:]):
        assert refusal(parties, tmp_path, sealed + extra) == "trailing_data"

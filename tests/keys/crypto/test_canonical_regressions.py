"""Regression tests for fixes made in keys/crypto/canonical.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import crypto_generichash_blake2b_salt_personal

from keys.crypto.canonical import NotCanonical, canonical_json, hash32, parse_canonical


@pytest.mark.parametrize("data", [b'"\\ud800"', b'{"\\udfff":1}', b'["a\\ud83d"]'])
def test_lone_surrogates_are_refused_not_crashing(data: bytes) -> None:
    # json.loads turns these escapes into lone surrogates, which have no UTF-8 form;
    # this used to escape as UnicodeEncodeError (a crash) instead of an input error.
    with pytest.raises(NotCanonical):
        parse_canonical(data)


def test_lone_surrogate_values_cannot_be_serialised() -> None:
    with pytest.raises(NotCanonical):
        canonical_json({"k": "\ud800"})


def test_valid_astral_characters_still_round_trip() -> None:
    data = canonical_json({"k": "\U0001f600 åäö"})
    assert parse_canonical(data) == {"k": "\U0001f600 åäö"}


# hash32 is computed with hashlib (so canonical.py loads without nacl); every signature
# and vector depends on it giving libsodium's crypto_generichash_blake2b_salt_personal
# bytes exactly: no key, zero salt, the person zero-padded to 16 bytes.
@given(data=st.binary(max_size=300), person=st.binary(max_size=16))
def test_hash32_is_libsodiums_personalised_blake2b(data: bytes, person: bytes) -> None:
    expected = crypto_generichash_blake2b_salt_personal(data, digest_size=32, person=person)
    assert hash32(data, person) == bytes(expected)


def test_hash32_refuses_a_person_over_16_bytes() -> None:
    with pytest.raises(ValueError, match="at most 16 bytes"):
        hash32(b"x", b"stafett.too-long!")

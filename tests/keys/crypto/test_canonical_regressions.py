"""Regression tests for fixes made in keys/crypto/canonical.py."""

from __future__ import annotations

import pytest

from keys.crypto.canonical import NotCanonical, canonical_json, parse_canonical


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

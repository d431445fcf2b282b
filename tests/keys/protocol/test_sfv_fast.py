"""The canonical fast path for the signature headers reads exactly what ``http_sfv``
reads, and leaves everything else to it (``keys/protocol/sfv_fast.py``)."""

from __future__ import annotations

import base64

import pytest
from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.protocol import sfv_fast

KEY = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,12}", fullmatch=True)
PLAIN = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'),
    max_size=20,
)
ANY_STRING = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
PARAM_VALUE = st.one_of(ANY_STRING, st.integers(-(10**15) + 1, 10**15 - 1))


def _slow(value: str) -> Dictionary | None:
    field = Dictionary()
    try:
        field.parse(value.encode("ascii"))
    except ValueError:
        return None
    return field


@settings(max_examples=300, deadline=None)
@given(
    label=KEY,
    items=st.lists(ANY_STRING, max_size=6),
    params=st.dictionaries(KEY, PARAM_VALUE, max_size=6),
)
def test_a_canonical_signature_input_reads_as_http_sfv_reads_it(
    label: str, items: list[str], params: dict[str, object]
) -> None:
    inner = InnerList([Item(i) for i in items])
    for key, value in params.items():
        inner.params[key] = value
    field = Dictionary()
    field[label] = inner
    text = str(field)  # the canonical serialisation
    fast = sfv_fast.parse_signature_input(text)
    if any('"' in i or "\\" in i for i in items) or any(
        isinstance(v, str) and ('"' in v or "\\" in v) for v in params.values()
    ):
        assert fast is None  # escapes: left to http_sfv
        return
    assert fast is not None
    fast_label, fast_inner, fast_text = fast
    slow = _slow(text)
    assert slow is not None
    assert fast_label == label == next(iter(slow))
    assert [i.value for i in fast_inner] == [i.value for i in slow[label]]
    assert dict(fast_inner.params) == dict(slow[label].params)
    assert fast_text == str(slow[label])  # the signature-params line is the same text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='sig1=("@method" "x");created=12;nonce="ab" ,\t-:\\', max_size=60))
def test_the_fast_path_never_accepts_what_http_sfv_refuses_or_reads_otherwise(
    text: str,
) -> None:
    fast = sfv_fast.parse_signature_input(text)
    if fast is None:
        return
    slow = _slow(text)
    assert slow is not None
    assert len(slow) == 1
    label, inner, member = fast
    assert [i.value for i in inner] == [i.value for i in slow[label]]
    assert dict(inner.params) == dict(slow[label].params)
    assert member == str(slow[label])


@pytest.mark.parametrize(
    "text",
    [
        'sig1=("@method" "@path")',  # no parameters: still canonical
        'sig1=("@method");created=1;created=2',  # a repeated key: http_sfv decides
        'sig1=("@method");created=01',  # not canonical: leading zero
        'sig1=("@method");created=-0',  # not canonical: "-0" serialises as "0"
        'sig1=( "@method")',  # white space inside the list
        'sig1=("@method"), sig2=("@path")',  # two members
        'sig1=("@method");a=?1',  # a boolean: not our profile
        'sig1=("@method";x=1)',  # a parameter on an item
        'sig1=("a\\"b")',  # an escape
    ],
)
def test_hand_made_inputs_agree_with_http_sfv_or_go_to_it(text: str) -> None:
    fast = sfv_fast.parse_signature_input(text)
    if text == 'sig1=("@method" "@path")':
        assert fast is not None
        assert [i.value for i in fast[1]] == ["@method", "@path"]
    else:
        assert fast is None


def test_signature_values() -> None:
    raw = bytes(range(64))
    canonical = f"sig1=:{base64.b64encode(raw).decode()}:"
    assert sfv_fast.parse_signature(canonical) == ("sig1", raw)
    slow = _slow(canonical)
    assert slow is not None
    assert slow["sig1"].value == raw
    assert sfv_fast.parse_signature("sig1=:" + "A" * 84 + "==:") is None  # 63 bytes
    assert sfv_fast.parse_signature(canonical + ", x=:AA==:") is None
    # Non-zero unused bits in the last character: not canonical, left to http_sfv.
    odd = canonical[:-4] + "B==:"
    assert sfv_fast.parse_signature(odd) is None

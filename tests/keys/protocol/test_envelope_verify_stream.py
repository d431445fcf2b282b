"""The incremental verifier says exactly what ``verify_envelope`` says, however the
bytes are cut into chunks: the same ``VerifiedEnvelope`` for a good envelope, and the
same error class (so the same code) for every malformed, truncated, oversized or
tampered one — the published vectors and their refusals, every single-byte flip, every
truncation, appended bytes and the chunk-level tampering of the v1/v2 tamper tests.
"""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from envelope_support import Dissected, Parties, flip, make_header, seal, seal_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.crypto.keypairs import KeyId, VerifyKey
from keys.errors import EnvelopeError, EnvelopeSenderUnknown
from keys.protocol.envelope import VerifiedEnvelope, verify_envelope
from keys.protocol.envelope_header import CHUNK_BYTES
from keys.protocol.envelope_verify_stream import EnvelopeVerifier
from tests.support.paths import REPO

Outcome = VerifiedEnvelope | tuple[type[EnvelopeError], str]
Resolver = Callable[[KeyId], VerifyKey]


def reference(data: bytes, resolver: Resolver, max_size: int | None = None) -> Outcome:
    try:
        return verify_envelope(io.BytesIO(data), resolver, max_size=max_size)
    except EnvelopeError as exc:
        return type(exc), exc.code


def streamed(
    data: bytes,
    resolver: Resolver,
    cuts: Sequence[int],
    *,
    max_size: int | None = None,
    late: bool = False,
) -> Outcome:
    """Feed ``data`` cut at ``cuts``; ``late``: the resolver comes only at the end."""
    verifier = EnvelopeVerifier(None if late else resolver, max_size=max_size)
    try:
        start = 0
        for end in [*sorted(cuts), len(data)]:
            verifier.feed(data[start:end])
            start = end
        return verifier.verify(resolver if late else None)
    except EnvelopeError as exc:
        return type(exc), exc.code


def random_cuts(rng: random.Random, length: int) -> list[int]:
    mode = rng.randrange(3)
    if mode == 0 or length < 2:  # one piece
        return []
    if mode == 1:  # the gateway's shape: fixed-size pieces
        step = rng.choice([1, 7, 64, 4096, 65_536])
        return list(range(step, length, step))
    return rng.sample(range(1, length), min(length - 1, rng.randrange(1, 12)))


def assert_same(
    data: bytes, resolver: Resolver, rng: random.Random, max_size: int | None = None
) -> Outcome:
    expected = reference(data, resolver, max_size)
    cuts = random_cuts(rng, len(data))
    assert streamed(data, resolver, cuts, max_size=max_size) == expected, cuts
    return expected


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties()


@pytest.fixture(scope="module", params=[1, 2])
def sealed(parties: Parties, request: pytest.FixtureRequest) -> bytes:
    return seal_bytes(parties, "Hotbildsbedömning bifogas. ".encode() * 12, version=request.param)


@pytest.fixture(scope="module", params=[1, 2])
def multi(parties: Parties, request: pytest.FixtureRequest) -> Dissected:
    parsed = Dissected.parse(
        seal_bytes(parties, os.urandom(3 * CHUNK_BYTES + 1000), version=request.param)
    )
    assert len(parsed.chunks) == 4
    return parsed


# --- the published vectors ---------------------------------------------------------------
def _vectors(version: int) -> dict[str, Any]:
    path = REPO / "schemas" / "vectors" / f"envelope-v{version}.json"
    value = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


def _vector_resolver(vectors: dict[str, Any]) -> Resolver:
    sender = vectors["sender"]
    key = VerifyKey(bytes.fromhex(sender["ed25519_public_hex"]))

    def resolver(kid: KeyId) -> VerifyKey:
        if str(kid) != sender["kid"]:
            raise EnvelopeSenderUnknown()
        return key

    return resolver


def _refused_variants(vectors: dict[str, Any]) -> list[tuple[bytes, str]]:
    """The published refusal cases, applied to their base envelope."""
    refusals = vectors["refusals"]
    base = next(c for c in vectors["cases"] if c["name"] == refusals["base"])
    data = bytes.fromhex(base["envelope_hex"])
    out = []
    for case in refusals["cases"]:
        op = case["op"]
        if op == "append":
            variant = data + bytes.fromhex(case["bytes_hex"])
        elif op == "truncate":
            variant = data[: case["length"]]
        elif op == "xor":
            variant = flip(data, case["offset"], case["mask"])
        else:
            assert op == "replace_header_text"
            old, new = case["old"].encode(), case["new"].encode()
            assert data.count(old) == 1
            variant = data.replace(old, new)
        out.append((variant, case["expect"]))
    return out


@pytest.mark.parametrize("version", [1, 2])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_published_vectors_in_random_chunks(version: int, data: st.DataObject) -> None:
    vectors = _vectors(version)
    resolver = _vector_resolver(vectors)
    cases = [c for c in vectors["cases"] if "envelope_hex" in c]
    assert cases
    for case in cases:
        envelope = bytes.fromhex(case["envelope_hex"])
        cuts = data.draw(st.lists(st.integers(1, max(1, len(envelope) - 1)), max_size=10))
        outcome = streamed(envelope, resolver, cuts, late=data.draw(st.booleans()))
        assert outcome == verify_envelope(io.BytesIO(envelope), resolver)
        assert isinstance(outcome, VerifiedEnvelope)
        assert outcome.header_hash.hex() == case["hH_hex"]
        assert outcome.size == len(envelope)
    for variant, code in _refused_variants(vectors):
        cuts = data.draw(st.lists(st.integers(1, max(1, len(variant) - 1)), max_size=10))
        outcome = streamed(variant, resolver, cuts)
        assert outcome == reference(variant, resolver)
        assert not isinstance(outcome, VerifiedEnvelope)
        assert outcome[1] == code


# --- every flip, cut and appendage ----------------------------------------------------------
@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_every_single_byte_flip_gives_the_same_refusal(
    parties: Parties, sealed: bytes, mask: int
) -> None:
    rng = random.Random(mask)
    codes = set()
    for offset in range(len(sealed)):
        outcome = assert_same(flip(sealed, offset, mask), parties.resolve, rng)
        assert not isinstance(outcome, VerifiedEnvelope), offset
        codes.add(outcome[1])
    # Every region's refusal shows up, so the comparison covered each kind.
    assert {"envelope_malformed", "envelope_header_invalid", "envelope_signature_invalid"} <= codes


def test_every_truncation_and_appendage_gives_the_same_refusal(
    parties: Parties, sealed: bytes
) -> None:
    rng = random.Random(7)
    for length in range(len(sealed)):
        outcome = assert_same(sealed[:length], parties.resolve, rng)
        assert isinstance(outcome, tuple), length
        assert outcome[1] == "body_truncated", length
    for extra in (b"\x00", b"\x00\x00\x00\x00", sealed[-64:], sealed):
        outcome = assert_same(sealed + extra, parties.resolve, rng)
        assert isinstance(outcome, tuple)
        assert outcome[1] == "trailing_data"


def test_the_size_limit_is_applied_where_verify_envelope_applies_it(
    parties: Parties, multi: Dissected
) -> None:
    data = multi.assemble()
    rng = random.Random(3)
    frame_ends = sorted({end for _, end in multi.cipher_ranges})
    limits = [0, 1, 8, 12, 100, len(data) - 65, len(data) - 1, len(data), len(data) + 1]
    limits += [end + d for end in frame_ends for d in (-1, 0, 3, 4)]
    for limit in limits:
        assert_same(data, parties.resolve, rng, max_size=limit)
        assert_same(data[: len(data) // 2], parties.resolve, rng, max_size=limit)
        assert_same(data + b"\x00", parties.resolve, rng, max_size=limit)
    assert isinstance(reference(data, parties.resolve, len(data)), VerifiedEnvelope)


def test_multi_chunk_envelopes_and_their_frame_lengths(parties: Parties, multi: Dissected) -> None:
    data = multi.assemble()
    rng = random.Random(11)
    for _ in range(20):
        assert isinstance(assert_same(data, parties.resolve, rng), VerifiedEnvelope)
    # Flips in every frame length field and the end sentinel, and around them.
    starts = [start for start, _ in multi.cipher_ranges[1:]] + [multi.regions["body"][1]]
    for start in starts:
        for offset in range(start - 5, start + 2):
            for mask in (0x01, 0x80, 0xFF):
                assert_same(flip(data, offset, mask), parties.resolve, rng)


def _chunk_tampering(parties: Parties, parsed: Dissected) -> list[bytes]:
    """The v1/v2 tamper tests' chunk-level cases, signed again by the sender."""
    out = []
    for change in ("swap", "drop_middle", "drop_last", "short_not_last", "splice", "none"):
        copy = Dissected.parse(parsed.assemble())
        if change == "swap":
            copy.chunks[0], copy.chunks[1] = copy.chunks[1], copy.chunks[0]
        elif change == "drop_middle":
            del copy.chunks[1]
        elif change == "drop_last":
            del copy.chunks[-1]
        elif change == "short_not_last":
            copy.chunks[1] = copy.chunks[1][:-1]
        elif change == "splice":
            copy.chunks[2] = os.urandom(len(copy.chunks[2]))
        out += [copy.assemble(), copy.resign(parties.sender)]
    return out


def test_chunk_tampering_gives_the_same_answer(parties: Parties, multi: Dissected) -> None:
    rng = random.Random(5)
    codes = set()
    for data in _chunk_tampering(parties, multi):
        outcome = assert_same(data, parties.resolve, rng)
        codes.add("ok" if isinstance(outcome, VerifiedEnvelope) else outcome[1])
    assert {"ok", "envelope_signature_invalid", "envelope_malformed"} <= codes


def test_the_sender_is_resolved_when_the_header_arrives(parties: Parties) -> None:
    # Mallory is not in the directory: refused as soon as the prefix is in, before the
    # body — as verify_envelope does — and the same whether asked early or late.
    unknown = _sealed_by_mallory(parties)
    prefix_end = Dissected.parse(unknown).regions["wrapped"][1]
    verifier = EnvelopeVerifier(parties.resolve)
    with pytest.raises(EnvelopeSenderUnknown):
        verifier.feed(unknown[:prefix_end])
    assert streamed(unknown, parties.resolve, [], late=True) == reference(unknown, parties.resolve)
    # A header that arrives a byte at a time is parsed once it is whole, not before.
    good = seal_bytes(parties, b"hej")
    verifier = EnvelopeVerifier(parties.resolve)
    prefix_end = Dissected.parse(good).regions["wrapped"][1]
    for i in range(prefix_end - 1):
        verifier.feed(good[i : i + 1])
        assert verifier.prefix is None
    verifier.feed(good[prefix_end - 1 : prefix_end])
    assert verifier.prefix is not None
    verifier.feed(good[prefix_end:])
    assert verifier.verify() == verify_envelope(io.BytesIO(good), parties.resolve)


def _sealed_by_mallory(parties: Parties) -> bytes:
    header = make_header((parties.anna.kid,), parties.mallory.kid)
    out = io.BytesIO()
    seal(header, io.BytesIO(b"y" * 3000), [parties.anna.public()], parties.mallory, out)
    return out.getvalue()

"""Envelope v2 on large regular files: the body and the envelope are read on a
read-ahead thread (``keys.protocol.readahead``); nothing may be lost, reordered or read
past, and failures must still destroy the output."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from envelope_support import Parties, make_header

from keys.errors import EnvelopeSignatureInvalid, EnvelopeTrailingData
from keys.protocol.envelope import open_envelope, seal, verify_envelope
from keys.protocol.readahead import ReadAhead

BODY_BYTES = (9 << 20) + 12_345  # several read-ahead blocks, a short last chunk


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties()


def _seal_file(parties: Parties, folder: Path, content: bytes) -> Path:
    body, env = folder / "body.bin", folder / "in.stf"
    body.write_bytes(content)
    header = make_header((parties.anna.kid,), parties.sender.kid)
    with open(body, "rb") as src, open(env, "wb") as out:
        result = seal(header, src, [parties.anna.public()], parties.sender, out, version=2)
    assert result.content_length == len(content)
    body.unlink()
    return env


def test_large_files_round_trip_through_the_read_ahead_threads(
    parties: Parties, tmp_path: Path
) -> None:
    content = os.urandom(BODY_BYTES)
    env = _seal_file(parties, tmp_path, content)
    with open(env, "rb") as src:
        assert verify_envelope(src, parties.resolve).size == env.stat().st_size
    dest = tmp_path / "case.bin"
    opened = open_envelope(env, parties.anna, parties.resolve, dest)
    assert opened.content_length == len(content)
    assert dest.read_bytes() == content
    assert not [t for t in threading.enumerate() if t.name.startswith("stafett-")]


def test_a_large_tampered_file_is_refused_and_leaves_nothing(
    parties: Parties, tmp_path: Path
) -> None:
    env = _seal_file(parties, tmp_path, os.urandom(BODY_BYTES))
    data = bytearray(env.read_bytes())
    data[len(data) // 2] ^= 1  # a body byte in a block read ahead
    env.write_bytes(bytes(data))
    with pytest.raises(EnvelopeSignatureInvalid):
        open_envelope(env, parties.anna, parties.resolve, tmp_path / "case.bin")
    assert [p.name for p in tmp_path.iterdir()] == ["in.stf"]


def test_bytes_after_the_signature_of_a_large_file_are_refused(
    parties: Parties, tmp_path: Path
) -> None:
    env = _seal_file(parties, tmp_path, os.urandom(BODY_BYTES))
    with open(env, "ab") as out:
        out.write(b"\0")
    with pytest.raises(EnvelopeTrailingData):
        open_envelope(env, parties.anna, parties.resolve, tmp_path / "case.bin")
    assert [p.name for p in tmp_path.iterdir()] == ["in.stf"]


def test_read_ahead_returns_results_in_order_then_the_end() -> None:
    pieces = iter([b"a", b"bb", b"ccc", b""])
    with ReadAhead(lambda: next(pieces), depth=2) as ahead:
        assert [ahead.next() for _ in range(4)] == [b"a", b"bb", b"ccc", b""]
        with pytest.raises(ValueError, match="past the end"):
            ahead.next()  # nothing is read past the end


def test_read_ahead_raises_the_readers_error_where_its_result_was_due() -> None:
    calls = 0

    def read() -> bytes:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise OSError("disk gone")
        return b"x"

    with ReadAhead(read) as ahead:
        assert ahead.next() == b"x"
        assert ahead.next() == b"x"
        with pytest.raises(OSError, match="disk gone"):
            ahead.next()


def test_closing_early_stops_and_joins_the_reader() -> None:
    reads = 0

    def read() -> bytes:
        nonlocal reads
        reads += 1
        return b"x"  # an endless source

    ahead = ReadAhead(read, depth=3)
    assert ahead.next() == b"x"
    ahead.close()
    assert not [t for t in threading.enumerate() if t.name == "stafett-read"]
    assert reads <= 5  # at most depth ahead of what was taken, then stopped

"""What only a recipient can check, behind a *valid* signature.

A malicious or buggy sender signs whatever it built, so these bodies pass pass 1; the
recipient must still refuse non-zero padding, a length trailer that does not give back
``P``, a FINAL tag before the end (or none at all), stray secretstream tags, and a file
that changes between the passes. Each case is built with the test-only
``tests.support.envelope_testing`` helper (seal itself can only build well-formed bodies).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from envelope_support import Dissected, Parties, make_header, write

from keys.errors import (
    EnvelopeBodyInvalid,
    EnvelopeError,
    EnvelopeMalformed,
    EnvelopeSignatureInvalid,
    EnvelopeTruncated,
)
from keys.protocol.envelope import open_envelope, verify_envelope
from keys.protocol.envelope_header import CHUNK_BYTES
from keys.protocol.envelope_open import _open_stream
from keys.protocol.padding import TRAILER_BYTES, padded_length
from tests.support.envelope_testing import (
    TAG_FINAL,
    TAG_MESSAGE,
    TAG_PUSH,
    TAG_REKEY,
    _build_envelope_for_tests,
    _new_content_key_for_tests,
)
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties()


def plaintext(content: bytes, *, padding: bytes | None = None, trailer: int | None = None) -> bytes:
    """``content ‖ padding ‖ u64 LE trailer``; by default exactly what seal builds."""
    total = padded_length(len(content))
    pad = padding if padding is not None else bytes(total - len(content) - TRAILER_BYTES)
    length = len(content) if trailer is None else trailer
    return content + pad + length.to_bytes(TRAILER_BYTES, "little")


def framed(data: bytes, tags: list[int] | None = None) -> list[tuple[bytes, int]]:
    """64 KiB chunks; MESSAGE on all but the last, FINAL on the last (unless ``tags``)."""
    pieces = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
    default = [TAG_MESSAGE] * (len(pieces) - 1) + [TAG_FINAL]
    return list(zip(pieces, tags or default, strict=True))


def build(parties: Parties, chunks: list[tuple[bytes, int]], **kw: Any) -> bytes:
    header = make_header((parties.anna.kid, parties.bo.kid), parties.sender.kid)
    return _build_envelope_for_tests(
        header, chunks, [parties.anna.public(), parties.bo.public()], parties.sender, **kw
    )


def refused(parties: Parties, tmp_path: Path, data: bytes) -> EnvelopeError:
    src = write(tmp_path, data)
    # The gateway's check (no K) accepts it: the signature is genuine.
    verify_envelope(io.BytesIO(data), parties.resolve)
    with pytest.raises(EnvelopeError) as caught:
        open_envelope(src, parties.anna, parties.resolve, tmp_path / "out.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.stf"]  # nothing left behind
    return caught.value


def test_the_helper_builds_what_seal_builds(parties: Parties, tmp_path: Path) -> None:
    content = b"Anm\xc3\xa4lan om oro, vidarebefordrad. " * 5000  # ≈ 170 KiB: 3 chunks
    src = write(tmp_path, build(parties, framed(plaintext(content))))
    opened = open_envelope(src, parties.anna, parties.resolve, tmp_path / "out.bin")
    assert opened.content_length == len(content)
    assert (tmp_path / "out.bin").read_bytes() == content


@pytest.mark.parametrize("where", ["first", "last"])
def test_non_zero_padding_is_refused(parties: Parties, tmp_path: Path, where: str) -> None:
    content = b"x" * 1000
    size = padded_length(len(content)) - len(content) - TRAILER_BYTES
    assert size > 0
    pad = bytearray(size)
    pad[0 if where == "first" else -1] = 1
    error = refused(
        parties, tmp_path, build(parties, framed(plaintext(content, padding=bytes(pad))))
    )
    assert isinstance(error, EnvelopeBodyInvalid)
    assert "padding" in str(error)


@pytest.mark.parametrize(
    "trailer",
    [
        0,  # a length whose Padmé bucket is smaller than P
        2**64 - 1,  # far beyond P
        padded_length(1000),  # P itself: would read the trailer as content
    ],
)
def test_an_inconsistent_length_trailer_is_refused(
    parties: Parties, tmp_path: Path, trailer: int
) -> None:
    content = b"y" * 1000
    data = build(parties, framed(plaintext(content, trailer=trailer)))
    assert isinstance(refused(parties, tmp_path, data), EnvelopeBodyInvalid)


def test_a_trailer_inside_the_bucket_but_over_content_is_refused(
    parties: Parties, tmp_path: Path
) -> None:
    # A shorter trailer with the real bytes left in the "padding": two readings of one
    # body (the second would hide 10 bytes), refused because padding must be zeros.
    content = b"z" * 1000
    body = plaintext(content)
    lie = body[:-TRAILER_BYTES] + (len(content) - 10).to_bytes(TRAILER_BYTES, "little")
    assert padded_length(len(content) - 10) == padded_length(len(content))
    error = refused(parties, tmp_path, build(parties, framed(lie)))
    assert isinstance(error, EnvelopeBodyInvalid)


def test_a_final_tag_mid_stream_is_refused(parties: Parties, tmp_path: Path) -> None:
    data = plaintext(b"w" * 100_000)
    assert len(data) > CHUNK_BYTES
    error = refused(parties, tmp_path, build(parties, framed(data, [TAG_FINAL, TAG_FINAL])))
    assert isinstance(error, EnvelopeMalformed)
    error = refused(parties, tmp_path, build(parties, framed(data, [TAG_FINAL, TAG_MESSAGE])))
    assert isinstance(error, EnvelopeMalformed)


def test_a_body_without_a_final_tag_is_truncated(parties: Parties, tmp_path: Path) -> None:
    data = plaintext(b"v" * 100_000)
    error = refused(parties, tmp_path, build(parties, framed(data, [TAG_MESSAGE, TAG_MESSAGE])))
    assert isinstance(error, EnvelopeTruncated)


@pytest.mark.parametrize("tag", [TAG_PUSH, TAG_REKEY])
def test_other_secretstream_tags_are_refused(parties: Parties, tmp_path: Path, tag: int) -> None:
    data = plaintext(b"u" * 100_000)
    error = refused(parties, tmp_path, build(parties, framed(data, [tag, TAG_FINAL])))
    assert isinstance(error, EnvelopeBodyInvalid)


# --- the file changes between pass 1 (verify) and pass 2 (decrypt) -------------------------
class SwappedBetweenPasses(io.BytesIO):
    """An envelope file that a co-recipient rewrites in place once pass 1 has finished.

    Pass 2 starts with a seek back to the body; that is the moment the bytes change.
    """

    def __init__(self, original: bytes, at: int, replacement: bytes) -> None:
        super().__init__(original)
        self._at, self._replacement = at, replacement
        self.swapped = False

    def seek(self, pos: int, whence: int = 0) -> int:
        if not self.swapped:
            self.getbuffer()[self._at : self._at + len(self._replacement)] = self._replacement
            self.swapped = True
        return super().seek(pos, whence)


def test_a_body_rewritten_between_the_passes_is_refused(parties: Parties, tmp_path: Path) -> None:
    # Bo, a co-recipient, knows K: a body he re-encrypts under K authenticates chunk by
    # chunk. Only the re-hash in pass 2 shows it is not what the sender signed.
    key = _new_content_key_for_tests()
    honest = build(
        parties, framed(plaintext("Flyttar till Borås den 3 mars. ".encode() * 4000)), key=key
    )
    forged = build(parties, framed(plaintext(b"Flyttar till Kiruna den 3 mars. " * 4000)), key=key)
    a, b = Dissected.parse(honest), Dissected.parse(forged)
    assert len(a.body()) == len(b.body())
    assert a.body() != b.body()
    start = a.regions["body"][0]

    dest = tmp_path / "out.bin"
    opened = _open_stream(
        SwappedBetweenPasses(honest, start, a.body()),  # a no-op swap: opens fine
        parties.anna,
        parties.resolve,
        dest,
        max_size=None,
        durable=False,
    )
    assert dest.read_bytes().startswith(b"Flyttar till Bor")
    dest.unlink()
    assert opened.content_length > 0

    src = SwappedBetweenPasses(honest, start, b.body())
    with pytest.raises(EnvelopeSignatureInvalid, match="changed"):
        _open_stream(src, parties.anna, parties.resolve, dest, max_size=None, durable=False)
    assert src.swapped
    assert list(tmp_path.iterdir()) == []  # neither the output nor the temp file


class ReplacedBetweenPasses(io.BytesIO):
    """The whole file replaced (same header, a longer body) once pass 1 has finished."""

    def __init__(self, original: bytes, replacement: bytes) -> None:
        super().__init__(original)
        self._replacement: bytes | None = replacement

    def seek(self, pos: int, whence: int = 0) -> int:
        if self._replacement is not None:
            super().seek(0)
            self.truncate()
            self.write(self._replacement)
            self._replacement = None
        return super().seek(pos, whence)


def test_a_longer_body_after_pass_1_is_refused_before_it_is_decrypted(
    parties: Parties, tmp_path: Path
) -> None:
    key = _new_content_key_for_tests()
    short = build(parties, framed(plaintext(b"kort")), key=key)
    long = build(parties, framed(plaintext(b"l" * 200_000)), key=key)
    start = Dissected.parse(short).regions["body"][0]
    assert Dissected.parse(long).regions["body"][0] == start
    src = ReplacedBetweenPasses(short, long)
    with pytest.raises(EnvelopeMalformed, match="longer"):
        _open_stream(
            src, parties.anna, parties.resolve, tmp_path / "o", max_size=None, durable=False
        )
    assert list(tmp_path.iterdir()) == []


class Trickle(io.BytesIO):
    """At most ``n`` bytes per read: every frame and the END sentinel straddle blocks."""

    def __init__(self, data: bytes, n: int) -> None:
        super().__init__(data)
        self._n = n

    def read(self, size: int | None = -1) -> bytes:
        limit = self._n if size is None or size < 0 else min(size, self._n)
        return super().read(limit)


@pytest.mark.parametrize("n", [1, 7, 4096, 65_557])
def test_short_reads_at_every_boundary_open_and_verify(
    parties: Parties, tmp_path: Path, n: int
) -> None:
    content = bytes(range(256)) * 600  # 150 KiB: 3 frames
    data = build(parties, framed(plaintext(content)))
    if n == 1:
        data = build(parties, framed(plaintext(content[:300])))  # keep 1-byte reads fast
        content = content[:300]
    verified = verify_envelope(Trickle(data, n), parties.resolve)
    assert verified.size == len(data)
    dest = tmp_path / "out.bin"
    _open_stream(
        Trickle(data, n), parties.anna, parties.resolve, dest, max_size=None, durable=False
    )
    assert dest.read_bytes() == content
    with pytest.raises(EnvelopeError) as caught:
        verify_envelope(Trickle(data + b"\x00", n), parties.resolve)
    assert caught.value.code == "trailing_data"


def test_only_a_regular_file_is_opened(parties: Parties, tmp_path: Path) -> None:
    with pytest.raises(EnvelopeMalformed, match="regular file"):
        open_envelope(Path("/dev/null"), parties.anna, parties.resolve, tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []


def test_the_test_helper_is_not_part_of_the_product() -> None:
    import keys

    assert "_build_envelope_for_tests" not in vars(keys)
    root = REPO
    users = subprocess.run(
        ["grep", "-rl", "--include=*.py", "_envelope_testing", "keys", "gateway", "clients"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert [u for u in users if not u.endswith("_envelope_testing.py")] == []
    assert sys.modules.get("tests.support.envelope_testing") is not None  # imported by this test

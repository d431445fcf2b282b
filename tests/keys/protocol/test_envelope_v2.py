"""Envelope v2: key commitment, one pass over the ciphertext, nothing released early.

The tamper classes are in ``test_envelope_v2_tamper.py``; the published vectors in
``test_envelope_v2_vectors.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from envelope_support import Dissected, Parties, make_header, seal_bytes

from keys.crypto.envelope_v2_stream import key_commitment
from keys.errors import (
    EnvelopeError,
    EnvelopeHeaderInvalid,
    EnvelopeSignatureInvalid,
    EnvelopeWrappedKeyInvalid,
)
from keys.protocol.envelope import (
    ENVELOPE_VERSION,
    EnvelopeHeader,
    open_envelope,
    seal,
    verify_envelope,
)
from keys.protocol.envelope_header import CHUNK_BYTES
from keys.protocol.envelope_open import _open_stream
from keys.protocol.padding import TRAILER_BYTES, padded_length
from tests.support.envelope_testing import TAG_FINAL, TAG_MESSAGE
from tests.support.envelope_v2_testing import build_v2_envelope_for_tests


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties()


def _chunks(content: bytes) -> list[tuple[bytes, int]]:
    total = padded_length(len(content))
    data = content + bytes(total - len(content) - TRAILER_BYTES)
    data += len(content).to_bytes(TRAILER_BYTES, "little")
    pieces = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
    return [(p, TAG_MESSAGE) for p in pieces[:-1]] + [(pieces[-1], TAG_FINAL)]


def test_seal_writes_v2_by_default_and_commits_to_the_content_key(parties: Parties) -> None:
    assert ENVELOPE_VERSION == 2
    header = make_header((parties.anna.kid,), parties.sender.kid)
    assert header.version == 1  # as the caller builds it: K does not exist yet
    out = io.BytesIO()
    result = seal(header, io.BytesIO(b"text"), [parties.anna.public()], parties.sender, out)
    data = out.getvalue()
    assert data.startswith(b"STAFETT\x02")
    sealed = Dissected.parse(data).header_json()
    assert sealed["v"] == 2
    assert sealed["key_commitment"] == result.header.key_commitment
    assert result.header.version == 2
    assert result.header_hash == result.header.hash()
    verified = verify_envelope(io.BytesIO(data), parties.resolve)  # the gateway's check
    assert verified.header == result.header
    assert verified.header_hash == result.header_hash


@pytest.mark.parametrize("size", [0, 1, 65527, 65528, 65536, 200_000, 3 * CHUNK_BYTES + 5])
def test_round_trip_every_size_class(parties: Parties, tmp_path: Path, size: int) -> None:
    content = os.urandom(size)
    src = tmp_path / "in.stf"
    src.write_bytes(seal_bytes(parties, content, version=2))
    opened = open_envelope(src, parties.bo, parties.resolve, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == content
    assert opened.content_length == size
    assert opened.header.version == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.stf", "out.bin"]


def test_v1_envelopes_still_open(parties: Parties, tmp_path: Path) -> None:
    content = os.urandom(70_000)
    src = tmp_path / "in.stf"
    src.write_bytes(seal_bytes(parties, content, version=1))
    assert src.read_bytes().startswith(b"STAFETT\x01")
    opened = open_envelope(src, parties.anna, parties.resolve, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == content
    assert opened.header.version == 1


# --- key commitment -----------------------------------------------------------------------
def _two_keys_envelope(parties: Parties, committed: bytes | None) -> tuple[bytes, bytes, bytes]:
    """Anna's box holds K1 (which encrypts the body), Bo's box K2; signed by the sender."""
    k1, k2 = os.urandom(32), os.urandom(32)
    header = make_header((parties.anna.kid, parties.bo.kid), parties.sender.kid)
    data = build_v2_envelope_for_tests(
        header,
        _chunks(b"Samma text till alla mottagare."),
        [parties.anna.public(), parties.bo.public()],
        parties.sender,
        key=k1,
        committed_key=committed if committed is not None else os.urandom(32),
        key_for={str(parties.bo.kid): k2},
    )
    return data, k1, k2


def _refused(parties: Parties, tmp_path: Path, data: bytes, who: Any) -> EnvelopeError:
    src = tmp_path / "in.stf"
    src.write_bytes(data)
    with pytest.raises(EnvelopeError) as caught:
        open_envelope(src, who, parties.resolve, tmp_path / "out.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.stf"]
    return caught.value


def test_co_recipients_given_different_keys_are_both_refused(
    parties: Parties, tmp_path: Path
) -> None:
    data, _, _ = _two_keys_envelope(parties, committed=None)  # commits to a third key
    verify_envelope(io.BytesIO(data), parties.resolve)  # genuine signature: the gateway takes it
    for who in (parties.anna, parties.bo):
        error = _refused(parties, tmp_path, data, who)
        assert isinstance(error, EnvelopeWrappedKeyInvalid), who.kid
        assert "commits" in str(error)


def test_only_the_committed_key_is_used_so_no_two_readings_exist(
    parties: Parties, tmp_path: Path
) -> None:
    # The header commits to K1: Anna reads the one plaintext, Bo (given K2) is refused
    # before a byte is decrypted — whatever K2 would have made of the body.
    k1 = os.urandom(32)
    header = make_header((parties.anna.kid, parties.bo.kid), parties.sender.kid)
    data = build_v2_envelope_for_tests(
        header,
        _chunks(b"Samma text till alla mottagare."),
        [parties.anna.public(), parties.bo.public()],
        parties.sender,
        key=k1,
        key_for={str(parties.bo.kid): os.urandom(32)},
    )
    assert isinstance(_refused(parties, tmp_path, data, parties.bo), EnvelopeWrappedKeyInvalid)
    src = tmp_path / "in.stf"
    open_envelope(src, parties.anna, parties.resolve, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"Samma text till alla mottagare."


def test_the_commitment_is_a_domain_separated_hash_of_k(parties: Parties) -> None:
    header = make_header((parties.anna.kid,), parties.sender.kid)
    key = bytes(range(32))
    commitment = key_commitment(key)
    assert commitment != key_commitment(bytes(32))
    assert len(commitment) == 32
    # hH covers it: changing the commitment changes the hash every box and chunk binds.
    a = EnvelopeHeader.from_json({**header.to_json(), "v": 2, "key_commitment": commitment.hex()})
    b = EnvelopeHeader.from_json({**header.to_json(), "v": 2, "key_commitment": "00" * 32})
    assert a.hash() != b.hash()


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},  # v2 without its commitment
        {"key_commitment": "00" * 32},  # a commitment in a v1 header
        {"v": 2, "key_commitment": "0" * 63},
        {"v": 2, "key_commitment": None},
        {"v": 3, "key_commitment": "00" * 32},
    ],
)
def test_headers_with_a_wrong_commitment_field_are_refused(
    parties: Parties, change: dict[str, Any]
) -> None:
    base = make_header((parties.anna.kid,), parties.sender.kid).to_json()
    with pytest.raises(EnvelopeHeaderInvalid):
        EnvelopeHeader.from_json({**base, **change})


@pytest.mark.parametrize("magic", [b"STAFETT\x01", b"STAFETT\x02"])
def test_the_magic_and_the_header_version_must_agree(parties: Parties, magic: bytes) -> None:
    version = 2 if magic.endswith(b"\x01") else 1  # the other one
    parsed = Dissected.parse(seal_bytes(parties, b"x", version=version))
    parsed.version = 2 if magic.endswith(b"\x02") else 1  # assemble() writes this magic
    with pytest.raises(EnvelopeHeaderInvalid):
        verify_envelope(io.BytesIO(parsed.resign(parties.sender)), parties.resolve)


def test_a_v1_signature_does_not_verify_as_v2(parties: Parties) -> None:
    parsed = Dissected.parse(seal_bytes(parties, b"x", version=2))
    parsed.version = 1
    v1_signed = parsed.resign(parties.sender)  # the v1 domain and hash over the same bytes
    parsed.version = 2
    parsed.signature = Dissected.parse(v1_signed).signature
    with pytest.raises(EnvelopeSignatureInvalid):
        verify_envelope(io.BytesIO(parsed.assemble()), parties.resolve)


# --- one pass; nothing released before the signature --------------------------------------
class Watched(io.BytesIO):
    """An envelope stream that records reads, refuses seeks, and looks at the output
    folder when the reader asks for the end of the file (after the signature bytes)."""

    def __init__(self, data: bytes, folder: Path) -> None:
        super().__init__(data)
        self.folder = folder
        self.bytes_read = 0
        self.at_end: list[tuple[str, int, int, int]] | None = None

    def read(self, n: int | None = -1, /) -> bytes:
        piece = super().read(n)
        self.bytes_read += len(piece)
        if not piece and self.at_end is None:
            self.at_end = []
            for entry in self.folder.iterdir():
                if entry.name.endswith(".part"):
                    for inner in entry.iterdir():
                        mode = stat.S_IMODE(inner.stat().st_mode)
                        folder_mode = stat.S_IMODE(entry.stat().st_mode)
                        self.at_end.append((entry.name, folder_mode, mode, inner.stat().st_size))
                else:
                    self.at_end.append((entry.name, -1, -1, -1))  # anything else: visible
            # Linux O_TMPFILE: a file in the folder with no name, open only in this process.
            for fd in os.listdir("/proc/self/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/self/fd/{fd}")
                    if target.startswith(f"{self.folder}/#") and target.endswith(" (deleted)"):
                        info = os.stat(f"/proc/self/fd/{fd}")
                        mode = stat.S_IMODE(info.st_mode)
                        self.at_end.append(("", 0, mode, info.st_size))
        return piece

    def seek(self, pos: int, whence: int = 0) -> int:
        raise AssertionError("v2 open must not seek: one pass")


def _open_watched(parties: Parties, tmp_path: Path, data: bytes) -> Watched:
    out = tmp_path / "out"
    out.mkdir()
    stream = Watched(data, out)
    _open_stream(
        stream, parties.anna, parties.resolve, out / "case.pdf", max_size=None, durable=False
    )
    return stream


def test_open_reads_each_byte_once_and_releases_only_after_the_signature(
    parties: Parties, tmp_path: Path
) -> None:
    content = os.urandom(3 << 20)
    data = seal_bytes(parties, content, version=2)
    stream = _open_watched(parties, tmp_path, data)
    assert stream.bytes_read == len(data)  # one pass, no byte read twice
    # When the reader reached the end (the signature not yet checked) the plaintext was
    # in an unnamed file (O_TMPFILE) or in a private folder, not at the destination.
    assert stream.at_end is not None
    assert len(stream.at_end) == 1
    name, folder_mode, file_mode, size = stream.at_end[0]
    if name:  # no O_TMPFILE on this filesystem
        assert name.startswith(".case.pdf.")
        assert folder_mode == 0o700
    assert file_mode == 0o600
    assert size > 0  # decrypted while hashing, not after
    assert (tmp_path / "out" / "case.pdf").read_bytes() == content
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["case.pdf"]


def test_a_bad_signature_destroys_the_decrypted_output(parties: Parties, tmp_path: Path) -> None:
    data = bytearray(seal_bytes(parties, os.urandom(2 << 20), version=2))
    data[-1] ^= 1
    with pytest.raises(EnvelopeSignatureInvalid):
        _open_watched(parties, tmp_path, bytes(data))
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failed_open_leaves_an_existing_destination_untouched(
    parties: Parties, tmp_path: Path
) -> None:
    parsed = Dissected.parse(seal_bytes(parties, os.urandom(200_000), version=2))
    del parsed.chunks[-1]
    src = tmp_path / "in.stf"
    src.write_bytes(parsed.resign(parties.sender))
    dest = tmp_path / "case-file.pdf"
    dest.write_bytes(b"what was there before")
    with pytest.raises(EnvelopeError):
        open_envelope(src, parties.anna, parties.resolve, dest)
    assert dest.read_bytes() == b"what was there before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case-file.pdf", "in.stf"]


def test_a_successful_open_replaces_an_existing_destination(
    parties: Parties, tmp_path: Path
) -> None:
    content = os.urandom(300_000)
    src = tmp_path / "in.stf"
    src.write_bytes(seal_bytes(parties, content, version=2))
    dest = tmp_path / "case-file.pdf"
    dest.write_bytes(b"what was there before")
    open_envelope(src, parties.anna, parties.resolve, dest)
    assert dest.read_bytes() == content
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    # No temporary name or folder is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case-file.pdf", "in.stf"]

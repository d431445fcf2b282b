"""Envelope v1: round trips, the API contract, and each defence layer on its own."""

from __future__ import annotations

import io
import os
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from envelope_support import (  # seal: v1 unless told (these tests are about v1)
    Dissected,
    Parties,
    box_bytes,
    kid,
    make_header,
    seal,
    seal_bytes,
    with_box,
    write,
)

from keys.crypto.keypairs import DeviceKeyPair, KeyId, VerifyKey
from keys.errors import (
    DirectoryKeyRevoked,
    EnvelopeBodyInvalid,
    EnvelopeHeaderInvalid,
    EnvelopeMalformed,
    EnvelopeNotForThisDevice,
    EnvelopeSenderUnknown,
    EnvelopeSignatureInvalid,
    EnvelopeTooLarge,
    EnvelopeTrailingData,
    EnvelopeTruncated,
    EnvelopeWrappedKeyInvalid,
)
from keys.protocol.envelope import EnvelopeHeader, open_envelope, read_header, verify_envelope
from keys.protocol.padding import padded_length


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties()


def _open(parties: Parties, tmp_path: Path, data: bytes, device: DeviceKeyPair) -> bytes:
    src = write(tmp_path, data)
    dest = tmp_path / "out.bin"
    opened = open_envelope(src, device, parties.resolve, dest)
    content = dest.read_bytes()
    assert opened.content_length == len(content)
    return content


def _leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "in.stf")


# --- round trips ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "size", [0, 1, 7, 8, 100, 2048, 65527, 65528, 65529, 65536, 3 * 65536 + 5, 300_001]
)
def test_round_trip_every_size_class(parties: Parties, tmp_path: Path, size: int) -> None:
    content = os.urandom(size)
    data = seal_bytes(parties, content)
    for device in (parties.anna, parties.bo):
        assert _open(parties, tmp_path, data, device) == content
    assert _leftovers(tmp_path) == ["out.bin"]  # no temp file survives a success


def test_results_describe_the_envelope(parties: Parties, tmp_path: Path) -> None:
    header = make_header((parties.anna.kid,), parties.sender.kid)
    out = io.BytesIO()
    result = seal(header, io.BytesIO(b"x" * 5000), [parties.anna.public()], parties.sender, out)
    data = out.getvalue()
    assert result.total_length == len(data)
    assert result.header_hash == header.hash()
    assert result.content_length == 5000
    assert result.padded_length == padded_length(5000)

    verified = verify_envelope(io.BytesIO(data), parties.resolve)
    assert verified.header == header
    assert verified.wrapped_kids == (parties.anna.kid,)
    assert verified.size == len(data)
    assert verified.header_hash == result.header_hash
    assert verified.sender_fingerprint == parties.sender.signing_key.verify_key.fingerprint()
    assert read_header(io.BytesIO(data)) == header

    opened = open_envelope(write(tmp_path, data), parties.anna, parties.resolve, tmp_path / "o")
    assert opened.header == header
    assert opened.header_hash == result.header_hash
    assert opened.opened_with == parties.anna.kid
    assert opened.sender_fingerprint == verified.sender_fingerprint


def test_sizes_in_one_padme_bucket_give_equal_envelopes(parties: Parties) -> None:
    # 98_400 + 8 and 100_000 + 8 both pad to 100_352: the envelope hides which it was.
    assert padded_length(98_400) == padded_length(100_000) == 100_352
    a = seal_bytes(parties, b"a" * 98_400)
    b = seal_bytes(parties, b"b" * 100_000)
    assert len(a) == len(b)


def test_short_reads_from_a_pipe_like_body(parties: Parties, tmp_path: Path) -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._src = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            return self._src.read(min(n, 1000) if n >= 0 else 1000)

    content = os.urandom(200_000)
    header = make_header((parties.anna.kid,), parties.sender.kid)
    out = io.BytesIO()
    seal(header, Trickle(content), [parties.anna.public()], parties.sender, out)
    assert _open(parties, tmp_path, out.getvalue(), parties.anna) == content


def test_memory_stays_bounded_for_a_large_streamed_body(parties: Parties, tmp_path: Path) -> None:
    size = 24 * 1024 * 1024

    class Zeros(io.RawIOBase):  # a body that never exists in memory as a whole
        left = size

        def readable(self) -> bool:
            return True

        def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
            n = min(len(buf), self.left)
            buf[:n] = bytes(n)
            self.left -= n
            return n

    header = make_header((parties.anna.kid,), parties.sender.kid)
    src = tmp_path / "big.stf"
    tracemalloc.start()
    try:
        with open(src, "wb") as out:
            seal(header, io.BufferedReader(Zeros()), [parties.anna.public()], parties.sender, out)
        _, seal_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        opened = open_envelope(src, parties.anna, parties.resolve, tmp_path / "big.out")
        _, open_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert opened.content_length == size
    assert (tmp_path / "big.out").stat().st_size == size
    # A few MiB at most (a hashing batch in flight), never the 24 MiB body.
    assert seal_peak < 6 * 1024 * 1024
    assert open_peak < 6 * 1024 * 1024


# --- who may open -------------------------------------------------------------------------
def test_a_device_not_addressed_is_refused(parties: Parties, tmp_path: Path) -> None:
    data = seal_bytes(parties, b"hej", recipients=(parties.anna,))
    with pytest.raises(EnvelopeNotForThisDevice):
        _open(parties, tmp_path, data, parties.bo)
    assert _leftovers(tmp_path) == []


def test_a_device_holding_several_key_versions_opens_with_the_right_one(
    parties: Parties, tmp_path: Path
) -> None:
    old = DeviceKeyPair.generate(kid("so-nordost/anna/1"))
    data = seal_bytes(parties, b"till gamla nyckeln", recipients=(old,))
    src = write(tmp_path, data)
    opened = open_envelope(src, [parties.anna, old], parties.resolve, tmp_path / "o")
    assert opened.opened_with == old.kid
    assert (tmp_path / "o").read_bytes() == b"till gamla nyckeln"


def test_a_key_with_the_right_kid_but_the_wrong_secret_is_refused(
    parties: Parties, tmp_path: Path
) -> None:
    impostor = DeviceKeyPair.generate(parties.anna.kid)  # e.g. a stale keystore
    data = seal_bytes(parties, b"hej", recipients=(parties.anna,))
    with pytest.raises(EnvelopeWrappedKeyInvalid):
        _open(parties, tmp_path, data, impostor)
    assert _leftovers(tmp_path) == []


# --- the sender ---------------------------------------------------------------------------
def test_a_sender_missing_from_the_directory_is_refused(parties: Parties, tmp_path: Path) -> None:
    header = make_header((parties.anna.kid,), parties.mallory.kid)
    out = io.BytesIO()
    seal(header, io.BytesIO(b"x"), [parties.anna.public()], parties.mallory, out)
    with pytest.raises(EnvelopeSenderUnknown):
        _open(parties, tmp_path, out.getvalue(), parties.anna)
    with pytest.raises(EnvelopeSenderUnknown):
        verify_envelope(io.BytesIO(out.getvalue()), parties.resolve)


def test_a_signature_by_a_key_not_in_the_directory_is_refused(
    parties: Parties, tmp_path: Path
) -> None:
    # Mallory claims to be eva (a directory kid) but signs with her own key.
    forged = DeviceKeyPair(
        parties.sender.kid, parties.mallory.signing_key, parties.mallory.encryption_key
    )
    header = make_header((parties.anna.kid,), forged.kid)
    out = io.BytesIO()
    seal(header, io.BytesIO(b"x"), [parties.anna.public()], forged, out)
    with pytest.raises(EnvelopeSignatureInvalid):
        _open(parties, tmp_path, out.getvalue(), parties.anna)
    with pytest.raises(EnvelopeSignatureInvalid):
        verify_envelope(io.BytesIO(out.getvalue()), parties.resolve)
    assert _leftovers(tmp_path) == []


def test_directory_errors_from_the_resolver_become_sender_unknown(parties: Parties) -> None:
    def revoked(_: KeyId) -> VerifyKey:
        raise DirectoryKeyRevoked()

    data = seal_bytes(parties, b"x")
    with pytest.raises(EnvelopeSenderUnknown):
        verify_envelope(io.BytesIO(data), revoked)


# --- gateway-side checks ------------------------------------------------------------------
def test_verify_refuses_envelopes_over_the_size_limit(parties: Parties) -> None:
    data = seal_bytes(parties, os.urandom(100_000))
    assert verify_envelope(io.BytesIO(data), parties.resolve, max_size=len(data)).size == len(data)
    with pytest.raises(EnvelopeTooLarge):
        verify_envelope(io.BytesIO(data), parties.resolve, max_size=len(data) - 1)
    with pytest.raises(EnvelopeTooLarge):
        verify_envelope(io.BytesIO(data), parties.resolve, max_size=100)


def test_trailing_bytes_are_refused(parties: Parties, tmp_path: Path) -> None:
    data = seal_bytes(parties, b"x" * 10)
    for extra in (b"\x00", b"STAFETT\x01", os.urandom(100)):
        with pytest.raises(EnvelopeTrailingData):
            verify_envelope(io.BytesIO(data + extra), parties.resolve)
        with pytest.raises(EnvelopeTrailingData):
            _open(parties, tmp_path, data + extra, parties.anna)
    assert _leftovers(tmp_path) == []


# --- seal refuses inconsistent input ------------------------------------------------------
def test_seal_refuses_keys_that_do_not_match_the_header(parties: Parties) -> None:
    header = make_header((parties.anna.kid, parties.bo.kid), parties.sender.kid)
    with pytest.raises(EnvelopeHeaderInvalid):  # a recipient key missing
        seal(header, io.BytesIO(b""), [parties.anna.public()], parties.sender, io.BytesIO())
    with pytest.raises(EnvelopeHeaderInvalid):  # an extra recipient key
        seal(
            header,
            io.BytesIO(b""),
            [parties.anna.public(), parties.bo.public(), parties.carl.public()],
            parties.sender,
            io.BytesIO(),
        )
    with pytest.raises(EnvelopeHeaderInvalid):  # sealing key is not header.sender
        seal(
            header,
            io.BytesIO(b""),
            [parties.anna.public(), parties.bo.public()],
            parties.carl,
            io.BytesIO(),
        )


# --- inner layers, each on its own (the signature is re-made by the real sender) -----------
def _multi_chunk(parties: Parties) -> tuple[bytes, Dissected]:
    # 3 full chunks + a short one; dropping the short one still leaves a Padmé length.
    content = os.urandom(3 * 65536 + 1000)
    data = seal_bytes(parties, content)
    parsed = Dissected.parse(data)
    assert len(parsed.chunks) == 4
    return data, parsed


def test_reordered_chunks_are_refused(parties: Parties, tmp_path: Path) -> None:
    _, parsed = _multi_chunk(parties)
    parsed.chunks[0], parsed.chunks[1] = parsed.chunks[1], parsed.chunks[0]
    with pytest.raises(EnvelopeSignatureInvalid):
        _open(parties, tmp_path, parsed.assemble(), parties.anna)
    with pytest.raises(EnvelopeBodyInvalid):
        _open(parties, tmp_path, parsed.resign(parties.sender), parties.anna)
    assert _leftovers(tmp_path) == []


def test_a_dropped_middle_chunk_is_refused(parties: Parties, tmp_path: Path) -> None:
    _, parsed = _multi_chunk(parties)
    del parsed.chunks[1]
    with pytest.raises(EnvelopeBodyInvalid):
        _open(parties, tmp_path, parsed.resign(parties.sender), parties.anna)
    assert _leftovers(tmp_path) == []


def test_a_dropped_final_chunk_is_truncation(parties: Parties, tmp_path: Path) -> None:
    _, parsed = _multi_chunk(parties)
    del parsed.chunks[-1]
    with pytest.raises(EnvelopeTruncated):
        _open(parties, tmp_path, parsed.resign(parties.sender), parties.anna)
    assert _leftovers(tmp_path) == []


def test_a_body_cut_off_in_transit_is_truncation(parties: Parties, tmp_path: Path) -> None:
    data, parsed = _multi_chunk(parties)
    start, end = parsed.regions["body"]
    for cut in (start + 10, start + 24 + 4 + 65553, end - 1):
        with pytest.raises(EnvelopeTruncated):
            _open(parties, tmp_path, data[:cut], parties.anna)
        with pytest.raises(EnvelopeTruncated):
            verify_envelope(io.BytesIO(data[:cut]), parties.resolve)


def test_a_short_chunk_that_is_not_last_is_malformed(parties: Parties, tmp_path: Path) -> None:
    _, parsed = _multi_chunk(parties)
    parsed.chunks[0], parsed.chunks[-1] = parsed.chunks[-1], parsed.chunks[0]
    with pytest.raises(EnvelopeMalformed):
        _open(parties, tmp_path, parsed.resign(parties.sender), parties.anna)


def test_a_header_swapped_onto_another_body_is_refused(parties: Parties, tmp_path: Path) -> None:
    first = Dissected.parse(seal_bytes(parties, b"first " * 100))
    second = Dissected.parse(
        seal_bytes(parties, b"second " * 100, message_id="0e4c1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b")
    )
    first.ss_header, first.chunks = second.ss_header, second.chunks
    with pytest.raises(EnvelopeSignatureInvalid):
        _open(parties, tmp_path, first.assemble(), parties.anna)
    # Even signed by the real sender, the body is bound to its own header (ad = hH) and
    # its own content key.
    with pytest.raises((EnvelopeBodyInvalid, EnvelopeWrappedKeyInvalid)):
        _open(parties, tmp_path, first.resign(parties.sender), parties.anna)
    # Same header and keys, other body: the secretstream refuses it on its own.
    second_keys = Dissected.parse(seal_bytes(parties, b"x"))
    second_keys.ss_header, second_keys.chunks = second.ss_header, second.chunks
    with pytest.raises(EnvelopeBodyInvalid):
        _open(parties, tmp_path, second_keys.resign(parties.sender), parties.anna)
    assert _leftovers(tmp_path) == []


def test_an_envelope_readdressed_to_another_recipient_is_refused(
    parties: Parties, tmp_path: Path
) -> None:
    data = seal_bytes(parties, b"only for anna", recipients=(parties.anna,))
    parsed = Dissected.parse(data)
    header = parsed.header_json()
    header["recipients"] = [str(parties.carl.kid)]
    parsed.set_header(header)
    (entry,) = parsed.boxes()
    parsed.set_boxes([{"box": entry["box"], "kid": str(parties.carl.kid)}])
    with pytest.raises(EnvelopeSignatureInvalid):
        _open(parties, tmp_path, parsed.assemble(), parties.carl)
    with pytest.raises(EnvelopeWrappedKeyInvalid):  # anna's box does not open for carl
        _open(parties, tmp_path, parsed.resign(parties.sender), parties.carl)

    # A co-recipient who knows K re-wraps it for carl under a new header. Even with a
    # valid signature the box carries the old hH, and carl refuses it.
    plain = parties.anna.encryption_key.unseal(box_bytes(entry))
    parsed.set_boxes(
        [
            with_box(
                {"box": "", "kid": str(parties.carl.kid)},
                parties.carl.public().encryption_key.seal(plain),
            )
        ]
    )
    with pytest.raises(EnvelopeWrappedKeyInvalid):
        _open(parties, tmp_path, parsed.resign(parties.sender), parties.carl)
    assert _leftovers(tmp_path) == []


def test_a_wrapped_key_from_another_envelope_is_refused(parties: Parties, tmp_path: Path) -> None:
    target = Dissected.parse(seal_bytes(parties, b"one", recipients=(parties.anna,)))
    other = Dissected.parse(
        seal_bytes(
            parties,
            b"two",
            recipients=(parties.anna,),
            message_id="1e4c1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b",
        )
    )
    target.wrapped = other.wrapped
    with pytest.raises(EnvelopeWrappedKeyInvalid):
        _open(parties, tmp_path, target.resign(parties.sender), parties.anna)


def test_header_recipients_must_equal_the_wrapped_kids(parties: Parties, tmp_path: Path) -> None:
    parsed = Dissected.parse(seal_bytes(parties, b"x"))
    header = parsed.header_json()
    header["recipients"] = [str(parties.anna.kid)]  # W still holds anna and bo
    parsed.set_header(header)
    with pytest.raises(EnvelopeHeaderInvalid):
        verify_envelope(io.BytesIO(parsed.resign(parties.sender)), parties.resolve)


# --- header rules -------------------------------------------------------------------------
def test_header_normalises_recipient_order(parties: Parties) -> None:
    a = make_header((parties.anna.kid, parties.bo.kid), parties.sender.kid)
    b = make_header((parties.bo.kid, parties.anna.kid), parties.sender.kid)
    assert a == b
    assert a.canonical() == b.canonical()
    assert EnvelopeHeader.from_json(a.to_json()) == a


@pytest.mark.parametrize(
    "change",
    [
        {"recipients": (kid("so-centrum/x/1"),)},  # another unit's device
        {"recipients": ()},
        {"expires": 1_767_225_600},  # not after created
        {"subject_ref": "19800101-1234"},  # a personnummer, not a pseudonym
        {"message_id": "not-a-uuid"},
        {"category": "All Categories"},
        {"checkpoint_size": 0},
        {"in_reply_to": "x"},
        {"created": -1},
        {"created": True},
    ],
)
def test_invalid_headers_are_refused_on_construction(
    parties: Parties, change: dict[str, Any]
) -> None:
    base = make_header((parties.anna.kid,), parties.sender.kid)
    with pytest.raises(EnvelopeHeaderInvalid):
        replace(base, **change)


def test_header_error_messages_never_echo_values(parties: Parties) -> None:
    base = make_header((parties.anna.kid,), parties.sender.kid)
    with pytest.raises(EnvelopeHeaderInvalid) as caught:
        replace(base, subject_ref="198001011234")
    assert "198001011234" not in str(caught.value)


def test_a_failed_open_leaves_an_existing_destination_untouched(
    parties: Parties, tmp_path: Path
) -> None:
    _, parsed = _multi_chunk(parties)
    del parsed.chunks[-1]  # truncated, discovered only at the end of the second pass
    src = write(tmp_path, parsed.resign(parties.sender))
    dest = tmp_path / "case-file.pdf"
    dest.write_bytes(b"what was there before")
    with pytest.raises(EnvelopeTruncated):
        open_envelope(src, parties.anna, parties.resolve, dest)
    assert dest.read_bytes() == b"what was there before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case-file.pdf", "in.stf"]

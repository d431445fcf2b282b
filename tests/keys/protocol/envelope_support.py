"""Shared parties, headers and an envelope dissector for the envelope tests.

The dissector splits an envelope into its sections and can put it back together and
re-sign it with the sender's real key. Re-signing lets a test get past the signature
on purpose, to show that the inner layers (wrapped-key binding, secretstream) refuse
the same tampering on their own.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from keys.crypto.canonical import b64d, b64e, canonical_json, hash32, parse_canonical
from keys.crypto.envelope_v2_stream import body_hash
from keys.crypto.keypairs import DeviceKeyPair, KeyId, VerifyKey
from keys.errors import EnvelopeError, EnvelopeSenderUnknown
from keys.protocol.envelope import EnvelopeHeader, SealResult, open_envelope
from keys.protocol.envelope import seal as seal_any_version

MAGIC = b"STAFETT\x01"
MAGIC_V2 = b"STAFETT\x02"


def seal(*args: Any, **kwargs: Any) -> SealResult:
    """``keys.protocol.envelope.seal`` writing v1 unless told: the v1 tests test v1."""
    kwargs.setdefault("version", 1)
    return seal_any_version(*args, **kwargs)


def kid(text: str) -> KeyId:
    return KeyId.parse(text)


@dataclass
class Parties:
    sender: DeviceKeyPair = field(default_factory=lambda: DeviceKeyPair.generate(kid("sav/eva/1")))
    anna: DeviceKeyPair = field(
        default_factory=lambda: DeviceKeyPair.generate(kid("so-nordost/anna/2"))
    )
    bo: DeviceKeyPair = field(
        default_factory=lambda: DeviceKeyPair.generate(kid("so-nordost/bo/1"))
    )
    carl: DeviceKeyPair = field(
        default_factory=lambda: DeviceKeyPair.generate(kid("so-nordost/carl/1"))
    )
    mallory: DeviceKeyPair = field(
        default_factory=lambda: DeviceKeyPair.generate(kid("las-storgoteborg/mallory/1"))
    )

    def directory(self) -> dict[KeyId, VerifyKey]:
        """The verified directory's active signing keys (mallory is not enrolled)."""
        return {
            p.kid: p.signing_key.verify_key for p in (self.sender, self.anna, self.bo, self.carl)
        }

    def resolve(self, k: KeyId) -> VerifyKey:
        try:
            return self.directory()[k]
        except KeyError:
            raise EnvelopeSenderUnknown() from None


def make_header(recipients: tuple[KeyId, ...], sender: KeyId, **overrides: Any) -> EnvelopeHeader:
    base = EnvelopeHeader(
        message_id="5b0d8f7e-3c1a-4e2b-9f6d-0a1b2c3d4e5f",
        sender=sender,
        recipient_unit="so-nordost",
        recipients=recipients,
        consent_id="consent-42",
        subject_ref="a1" * 32,
        category="case_transfer",
        purpose="transfer_to_district",
        created=1_767_225_600,
        expires=1_767_225_600 + 86400 * 14,
        checkpoint_size=12,
        checkpoint_head="0f" * 32,
        in_reply_to=None,
    )
    return replace(base, **overrides) if overrides else base


def seal_bytes(
    parties: Parties,
    content: bytes,
    recipients: tuple[DeviceKeyPair, ...] | None = None,
    *,
    version: int = 1,
    **header_overrides: Any,
) -> bytes:
    devices = recipients if recipients is not None else (parties.anna, parties.bo)
    header = make_header(tuple(d.kid for d in devices), parties.sender.kid, **header_overrides)
    out = io.BytesIO()
    seal(
        header,
        io.BytesIO(content),
        [d.public() for d in devices],
        parties.sender,
        out,
        version=version,
    )
    return out.getvalue()


@dataclass
class Dissected:
    header: bytes
    wrapped: bytes
    ss_header: bytes
    chunks: list[bytes]
    signature: bytes

    # byte ranges in the original envelope, for region-aware tampering tests
    regions: dict[str, tuple[int, int]] = field(default_factory=dict)
    cipher_ranges: list[tuple[int, int]] = field(default_factory=list)  # ss_hdr + each chunk
    version: int = 1

    @classmethod
    def parse(cls, data: bytes) -> Dissected:
        assert data[:8] in (MAGIC, MAGIC_V2)
        pos = 8
        regions: dict[str, tuple[int, int]] = {"magic": (0, 8), "hlen": (8, 12)}
        (hlen,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 4
        header = data[pos : pos + hlen]
        regions["header"] = (pos, pos + hlen)
        pos += hlen
        regions["wlen"] = (pos, pos + 4)
        (wlen,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 4
        wrapped = data[pos : pos + wlen]
        regions["wrapped"] = (pos, pos + wlen)
        pos += wlen
        body_start = pos
        ss_header = data[pos : pos + 24]
        pos += 24
        chunks: list[bytes] = []
        cipher_ranges: list[tuple[int, int]] = [(body_start, body_start + 24)]
        while True:
            (clen,) = struct.unpack(">I", data[pos : pos + 4])
            pos += 4
            if clen == 0:
                break
            chunks.append(data[pos : pos + clen])
            cipher_ranges.append((pos, pos + clen))
            pos += clen
        regions["body"] = (body_start, pos)
        regions["signature"] = (pos, pos + 64)
        assert pos + 64 == len(data)
        version = 2 if data[:8] == MAGIC_V2 else 1
        return cls(header, wrapped, ss_header, chunks, data[pos:], regions, cipher_ranges, version)

    def body(self) -> bytes:
        frames = b"".join(struct.pack(">I", len(c)) + c for c in self.chunks)
        return self.ss_header + frames + b"\x00\x00\x00\x00"

    def assemble(self) -> bytes:
        return (
            (MAGIC_V2 if self.version == 2 else MAGIC)
            + struct.pack(">I", len(self.header))
            + self.header
            + struct.pack(">I", len(self.wrapped))
            + self.wrapped
            + self.body()
            + self.signature
        )

    def resign(self, sender: DeviceKeyPair) -> bytes:
        """Assemble with a fresh, valid signature by ``sender``."""
        v2 = self.version == 2
        message = (
            (b"stafett/v2/sig" if v2 else b"stafett/v1/sig")
            + hash32(self.header, b"stafett.hdr")
            + hash32(self.wrapped, b"stafett.wrap")
            + (body_hash(self.body()) if v2 else hash32(self.body(), b"stafett.body"))
        )
        self.signature = sender.signing_key.sign(message)
        return self.assemble()

    def boxes(self) -> list[dict[str, str]]:
        value = parse_canonical(self.wrapped)
        assert isinstance(value, list)
        return value

    def set_boxes(self, boxes: list[dict[str, str]]) -> None:
        self.wrapped = canonical_json(sorted(boxes, key=lambda b: b["kid"]))

    def header_json(self) -> dict[str, Any]:
        value = parse_canonical(self.header)
        assert isinstance(value, dict)
        return value

    def set_header(self, value: dict[str, Any]) -> None:
        self.header = canonical_json(value)


def box_bytes(entry: dict[str, str]) -> bytes:
    return b64d(entry["box"])


def with_box(entry: dict[str, str], raw: bytes) -> dict[str, str]:
    return {"box": b64e(raw), "kid": entry["kid"]}


def write(tmp_path: Path, data: bytes, name: str = "in.stf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def region_of(parsed: Dissected, offset: int) -> str:
    """The name of the envelope section that holds byte ``offset``."""
    for name, (start, end) in parsed.regions.items():
        if start <= offset < end:
            return name
    raise AssertionError(offset)


def flip(data: bytes, offset: int, mask: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]


def refusal(parties: Parties, tmp_path: Path, data: bytes, who: DeviceKeyPair | None = None) -> str:
    """The code ``open_envelope`` refuses ``data`` with, for ``who`` (anna by default);
    and nothing is left behind: no destination, no temp file or private temp folder."""
    src = write(tmp_path, data)
    with pytest.raises(EnvelopeError) as caught:
        open_envelope(src, who or parties.anna, parties.resolve, tmp_path / "out.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.stf"]
    return caught.value.code

"""Typed keys: no secret in repr, constant-time equality, sizes, point checks, ids."""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Callable
from typing import Any

import pytest
from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519

from keys.crypto.keypairs import (
    DeviceId,
    DeviceKeyPair,
    EncryptionPrivateKey,
    EncryptionPublicKey,
    KeyId,
    SigningKey,
    VerifyKey,
    fingerprint,
    is_valid_name,
)
from keys.errors import EnvelopeWrappedKeyInvalid, KeyIdInvalid, KeyInvalid, SignatureInvalid

KID = KeyId.parse("so-nordost/anna/3")


def _spellings(secret: bytes) -> list[str]:
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        repr(secret),
        str(list(secret)),
    ]


# --- secrets never print ----------------------------------------------------------------
def test_repr_never_contains_secret_bytes(caplog: pytest.LogCaptureFixture) -> None:
    pair = DeviceKeyPair.generate(KID)
    secrets = [pair.signing_key.seed(), pair.encryption_key.secret_bytes()]
    objects: list[Any] = [pair, pair.signing_key, pair.encryption_key, [pair], {"k": pair}]
    shown = "".join(repr(o) + str(o) + f"{o}" for o in objects)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("pair %s %r", pair, pair.signing_key)
    shown += caplog.text
    for secret in secrets:
        for spelling in _spellings(secret):
            assert spelling not in shown
    assert "<secret>" in repr(pair.signing_key)
    assert "so-nordost/anna/3" in repr(pair)


def test_public_reprs_show_fingerprints() -> None:
    pair = DeviceKeyPair.generate(KID)
    public = pair.public()
    assert repr(public.verify_key) == f"VerifyKey({public.verify_key.fingerprint()})"
    assert public.encryption_key.fingerprint() in repr(public.encryption_key)


def test_fingerprint_format() -> None:
    fpr = fingerprint(bytes(32))
    parts = fpr.split(":")
    assert len(parts) == 8
    assert all(len(p) == 4 and int(p, 16) >= 0 for p in parts)
    assert fingerprint(bytes(32)) != fingerprint(b"\x01" + bytes(31))


# --- equality ---------------------------------------------------------------------------
def test_equality_semantics() -> None:
    seed = bytes(range(32))
    assert SigningKey(seed) == SigningKey(seed)
    assert SigningKey(seed) != SigningKey(bytes(32))
    assert SigningKey(seed).verify_key == SigningKey(seed).verify_key
    assert hash(SigningKey(seed).verify_key) == hash(SigningKey(seed).verify_key)
    assert EncryptionPrivateKey(seed) == EncryptionPrivateKey(seed)
    assert EncryptionPrivateKey(seed).public_key == EncryptionPrivateKey(seed).public_key
    # different types never compare equal, even over the same bytes
    assert SigningKey(seed) != EncryptionPrivateKey(seed)
    assert SigningKey(seed) != seed


@pytest.mark.parametrize(
    "make",
    [
        lambda: (SigningKey(bytes(range(32))), SigningKey(bytes(32))),
        lambda: (EncryptionPrivateKey(bytes(range(32))), EncryptionPrivateKey(bytes(32))),
        lambda: (SigningKey.generate().verify_key, SigningKey.generate().verify_key),
        lambda: (
            EncryptionPrivateKey.generate().public_key,
            EncryptionPrivateKey.generate().public_key,
        ),
    ],
)
def test_equality_is_constant_time(
    monkeypatch: pytest.MonkeyPatch, make: Callable[[], tuple[Any, Any]]
) -> None:
    # A spy on the standard library's constant-time comparison (passes through): == on
    # key objects must go through it, never through bytes.__eq__, which returns at the
    # first differing byte (a timing oracle on secret keys).
    a, b = make()
    calls: list[int] = []
    real = hmac.compare_digest

    def spy(x: Any, y: Any) -> bool:
        calls.append(1)
        return real(x, y)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert a != b
    assert a == a
    assert len(calls) >= 2


# --- sizes and encodings ----------------------------------------------------------------
@pytest.mark.parametrize("cls", [VerifyKey, SigningKey, EncryptionPublicKey, EncryptionPrivateKey])
@pytest.mark.parametrize("raw", [b"", bytes(31), bytes(33), bytearray(32), "a" * 32, None])
def test_wrong_sizes_and_types_refused(cls: Callable[[Any], Any], raw: Any) -> None:
    with pytest.raises(KeyInvalid):
        cls(raw)


def test_sizes() -> None:
    pair = DeviceKeyPair.generate(KID)
    assert len(pair.signing_key.seed()) == 32
    assert len(pair.encryption_key.secret_bytes()) == 32
    assert len(bytes(pair.public().verify_key)) == 32
    assert len(bytes(pair.public().encryption_key)) == 32
    assert len(pair.signing_key.sign(b"m")) == 64


def test_b64_round_trip_and_refusals() -> None:
    key = SigningKey.generate().verify_key
    assert VerifyKey.from_b64(key.b64()) == key
    enc = EncryptionPrivateKey.generate().public_key
    assert EncryptionPublicKey.from_b64(enc.b64()) == enc
    for bad in ["", "not base64!", base64.b64encode(bytes(31)).decode(), key.b64().rstrip("=")]:
        with pytest.raises(KeyInvalid):
            VerifyKey.from_b64(bad)
        with pytest.raises(KeyInvalid):
            EncryptionPublicKey.from_b64(bad)


P = 2**255 - 19


@pytest.mark.parametrize(
    "raw",
    [
        (1).to_bytes(32, "little"),  # the identity point: small order
        bytes(32),  # (0, -1)-ish encodings of order 4 points / not canonical
        (P + 1).to_bytes(32, "little"),  # y >= p: non-canonical encoding of y = 1
        b"\xff" * 32,
    ],
)
def test_ed25519_small_order_and_non_canonical_points_refused(raw: bytes) -> None:
    with pytest.raises(KeyInvalid):
        VerifyKey(raw)


@pytest.mark.parametrize(
    "raw",
    [
        bytes(32),  # u = 0
        (1).to_bytes(32, "little"),  # u = 1 (order 4)
        (P - 1).to_bytes(32, "little"),  # u = -1 (order 2)
        (P).to_bytes(32, "little"),  # non-canonical 0
        (P + 1).to_bytes(32, "little"),  # non-canonical 1
        (2**255 + 9).to_bytes(32, "little"),  # top bit set: second spelling of 9
    ],
)
def test_x25519_low_order_and_non_canonical_points_refused(raw: bytes) -> None:
    with pytest.raises(KeyInvalid):
        EncryptionPublicKey(raw)


def test_signature_size_checked() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"m")
    key.verify_key.verify(b"m", sig)
    for bad in [sig[:63], sig + b"\x00", b""]:
        with pytest.raises(SignatureInvalid):
            key.verify_key.verify(b"m", bad)
    with pytest.raises(SignatureInvalid):
        key.verify_key.verify(b"other", sig)


def test_seal_and_unseal() -> None:
    priv = EncryptionPrivateKey.generate()
    assert priv.unseal(priv.public_key.seal(b"hello")) == b"hello"
    with pytest.raises(EnvelopeWrappedKeyInvalid):
        EncryptionPrivateKey.generate().unseal(priv.public_key.seal(b"hello"))
    with pytest.raises(EnvelopeWrappedKeyInvalid):
        priv.unseal(b"short")


def test_the_two_key_pairs_are_independent() -> None:
    # Never derived from each other: the X25519 key is not the birational image of the
    # Ed25519 key (which would tie the signing and encryption secrets together).
    pair = DeviceKeyPair.generate(KID)
    converted = crypto_sign_ed25519_pk_to_curve25519(bytes(pair.signing_key.verify_key))
    assert converted != bytes(pair.encryption_key.public_key)
    assert pair.signing_key.seed() != pair.encryption_key.secret_bytes()


# --- ids --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "unit", "name", "version"),
    [
        ("so-nordost/anna/3", "so-nordost", "anna", 3),
        ("sav/bridge-1/1", "sav", "bridge-1", 1),
        ("admin/root/1", "admin", "root", 1),
        ("las-storgoteborg/p4/999999", "las-storgoteborg", "p4", 999999),
    ],
)
def test_key_id_parsing(text: str, unit: str, name: str, version: int) -> None:
    kid = KeyId.parse(text)
    assert (kid.unit, kid.name, kid.version) == (unit, name, version)
    assert str(kid) == text
    assert kid.device == DeviceId(unit, name)
    assert kid.device.key(version) == kid


@pytest.mark.parametrize(
    "text",
    [
        "",
        "so-nordost/anna",
        "so-nordost/anna/0",  # versions start at 1
        "so-nordost/anna/03",  # one spelling per version
        "so-nordost/anna/-1",
        "so-nordost/anna/1000000",
        "So-nordost/anna/1",
        "so-nordost/Anna/1",
        "-sav/anna/1",
        "sav-/anna/1",
        "sav/an na/1",
        "sav/anna/1/2",
        "sav//1",
        "sav/anna/1\n",
        "sav/ånna/1",
        "../anna/1",
        "a" * 65 + "/anna/1",
    ],
)
def test_key_id_refusals(text: str) -> None:
    with pytest.raises(KeyIdInvalid):
        KeyId.parse(text)


def test_device_id_parsing() -> None:
    device = DeviceId.parse("so-nordost/anna")
    assert (device.unit, device.name) == ("so-nordost", "anna")
    assert str(device) == "so-nordost/anna"
    assert str(device.key(2)) == "so-nordost/anna/2"
    for bad in ["", "so-nordost", "so-nordost/anna/1", "SO/anna", "so-nordost/", "/anna"]:
        with pytest.raises(KeyIdInvalid):
            DeviceId.parse(bad)


def test_name_validation() -> None:
    assert is_valid_name("so-nordost")
    assert is_valid_name("a" * 64)
    assert not is_valid_name("a" * 65)
    assert not is_valid_name("a--")
    assert not is_valid_name("")

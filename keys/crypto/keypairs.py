"""Typed key objects: the only way the rest of Stafett touches key material.

Threats defended here:
- a malformed or malicious public key slipped in at enrolment (wrong size, low-order
  X25519 point, non-canonical or small-order Ed25519 point) is refused on construction,
  so no later code has to remember to check;
- secrets leaking through ``repr``/logs/tracebacks: secret classes never print bytes;
- timing side channels when comparing keys: equality is constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import ClassVar, Self

import nacl.exceptions
import nacl.public
import nacl.signing
from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_scalarmult

from keys.crypto.canonical import b64d, b64e, hash32

# The ids and sizes live in the nacl-free keys.crypto.ids (so the domain and the record
# parsers load without libsodium); re-exported here, where the rest of Stafett imports them.
from keys.crypto.ids import KEY_BYTES as KEY_BYTES
from keys.crypto.ids import MAX_KEY_VERSION as MAX_KEY_VERSION
from keys.crypto.ids import SIGNATURE_BYTES as SIGNATURE_BYTES
from keys.crypto.ids import DeviceId as DeviceId
from keys.crypto.ids import KeyId as KeyId
from keys.crypto.ids import is_valid_name as is_valid_name
from keys.errors import KeyInvalid, SignatureInvalid

_P25519 = 2**255 - 19


def fingerprint(public: bytes) -> str:
    """Short human-comparable fingerprint: 16 bytes of BLAKE2b, grouped in fours."""
    digest = hash32(public, b"stafett.fpr")[:16].hex()
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


def _ct_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


class _PublicKey:
    """What every public key shares: raw bytes, base64, fingerprint, constant-time eq.

    Subclasses validate ``_raw`` in their constructor (the defence lives there) and name
    their curve in ``_KIND`` for error messages.
    """

    __slots__ = ("_raw",)
    _KIND: ClassVar[str]
    _raw: bytes

    @classmethod
    def from_b64(cls, text: str) -> Self:
        try:
            # every subclass takes the raw bytes; the base declares no __init__ of its own
            return cls(b64d(text, size=KEY_BYTES))  # type: ignore[call-arg]
        except KeyInvalid:
            raise
        except Exception as exc:
            raise KeyInvalid(f"{cls._KIND} public key is not valid base64 of 32 bytes") from exc

    def __bytes__(self) -> bytes:
        return self._raw

    def b64(self) -> str:
        return b64e(self._raw)

    def fingerprint(self) -> str:
        return fingerprint(self._raw)

    def __eq__(self, other: object) -> bool:
        # A VerifyKey never equals an EncryptionPublicKey with the same 32 bytes.
        return isinstance(other, type(self)) and _ct_equal(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fingerprint()})"


class VerifyKey(_PublicKey):
    """An Ed25519 public key, validated on construction."""

    __slots__ = ("_key",)
    _KIND = "Ed25519"

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
            raise KeyInvalid("Ed25519 public key must be 32 bytes")
        # Refuses non-canonical encodings (y >= p), points not on the curve and points
        # of small order: a small-order key lets one signature verify for many messages.
        if not crypto_core_ed25519_is_valid_point(raw):
            raise KeyInvalid("Ed25519 public key is not a valid, canonical, full-order point")
        self._raw = raw
        self._key = nacl.signing.VerifyKey(raw)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise :class:`SignatureInvalid` unless ``signature`` is valid for ``message``."""
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
            raise SignatureInvalid("signature must be 64 bytes")
        try:
            # libsodium refuses non-canonical S (malleability) and small-order R.
            self._key.verify(message, signature)
        except nacl.exceptions.BadSignatureError as exc:
            raise SignatureInvalid() from exc

    def is_valid(self, message: bytes, signature: bytes) -> bool:
        try:
            self.verify(message, signature)
        except SignatureInvalid:
            return False
        return True


class SigningKey:
    """An Ed25519 private key. Keep it secret: it never prints its bytes."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != KEY_BYTES:
            raise KeyInvalid("Ed25519 seed must be 32 bytes")
        self._key = nacl.signing.SigningKey(seed)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    def seed(self) -> bytes:
        """The 32-byte secret seed. Secret: only for the keystore."""
        return bytes(self._key)

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(bytes(self._key.verify_key))

    def derive(self, person: bytes, data: bytes) -> bytes:
        """A 32-byte secret bound to this key, ``person`` (≤ 16 bytes, the purpose) and
        ``data``: keyed BLAKE2b with the seed as key. For secrets the key's holder must
        recompute but should not store (e.g. the gateway's webhook secrets)."""
        return hashlib.blake2b(data, digest_size=32, key=self.seed(), person=person).digest()

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte detached signature of ``message``."""
        return bytes(self._key.sign(message).signature)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SigningKey) and _ct_equal(self.seed(), other.seed())

    def __hash__(self) -> int:
        return hash(self.verify_key)

    def __repr__(self) -> str:
        return f"SigningKey(<secret>, public={self.verify_key.fingerprint()})"


def _check_x25519_public(raw: bytes) -> None:
    if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
        raise KeyInvalid("X25519 public key must be 32 bytes")
    u = int.from_bytes(raw, "little")
    # Non-canonical: the top bit set or u >= p has a second spelling of the same point.
    if u >= _P25519:
        raise KeyInvalid("X25519 public key is not canonical")
    # Low order: a point whose order divides 8 gives an all-zero shared secret for
    # every clamped scalar (all are multiples of 8), so a sealed box to it is readable
    # by anyone. libsodium refuses the all-zero result; we probe with a fixed scalar.
    try:
        crypto_scalarmult(_PROBE_SCALAR, raw)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.CryptoError) as exc:
        raise KeyInvalid("X25519 public key is a low-order point") from exc


_PROBE_SCALAR = bytes([0x08] + [0x42] * 30 + [0x40])  # clamped: a multiple of 8


class EncryptionPublicKey(_PublicKey):
    """An X25519 public key, validated on construction."""

    __slots__ = ()
    _KIND = "X25519"

    def __init__(self, raw: bytes) -> None:
        _check_x25519_public(raw)
        self._raw = raw

    def seal(self, plaintext: bytes) -> bytes:
        """Anonymous sealed box to this key (``crypto_box_seal``)."""
        return bytes(nacl.public.SealedBox(nacl.public.PublicKey(self._raw)).encrypt(plaintext))


class EncryptionPrivateKey:
    """An X25519 private key. Keep it secret: it never prints its bytes."""

    __slots__ = ("_key",)

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
            raise KeyInvalid("X25519 private key must be 32 bytes")
        self._key = nacl.public.PrivateKey(raw)

    @classmethod
    def generate(cls) -> EncryptionPrivateKey:
        return cls(bytes(nacl.public.PrivateKey.generate()))

    def secret_bytes(self) -> bytes:
        """The 32-byte secret. Secret: only for the keystore."""
        return bytes(self._key)

    @property
    def public_key(self) -> EncryptionPublicKey:
        return EncryptionPublicKey(bytes(self._key.public_key))

    def unseal(self, sealed: bytes) -> bytes:
        """Open a sealed box addressed to this key; raises ``nacl``-free KeysError."""
        from keys.errors import EnvelopeWrappedKeyInvalid

        try:
            return bytes(nacl.public.SealedBox(self._key).decrypt(sealed))
        except (nacl.exceptions.CryptoError, nacl.exceptions.TypeError) as exc:
            raise EnvelopeWrappedKeyInvalid() from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EncryptionPrivateKey) and _ct_equal(
            self.secret_bytes(), other.secret_bytes()
        )

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"EncryptionPrivateKey(<secret>, public={self.public_key.fingerprint()})"


@dataclass(frozen=True)
class DevicePublicKeys:
    """What the directory publishes for one key version of one device."""

    kid: KeyId
    verify_key: VerifyKey
    encryption_key: EncryptionPublicKey


@dataclass(frozen=True)
class DeviceKeyPair:
    """One key version of a device: two independent key pairs (never derived)."""

    kid: KeyId
    signing_key: SigningKey
    encryption_key: EncryptionPrivateKey

    @classmethod
    def generate(cls, kid: KeyId) -> DeviceKeyPair:
        return cls(kid, SigningKey.generate(), EncryptionPrivateKey.generate())

    def public(self) -> DevicePublicKeys:
        return DevicePublicKeys(
            self.kid, self.signing_key.verify_key, self.encryption_key.public_key
        )

    def __repr__(self) -> str:
        return f"DeviceKeyPair({self.kid}, <secret>)"

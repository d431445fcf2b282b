"""The device keystore: private keys at rest, encrypted under a passphrase.

Threat: a lost or stolen laptop (or a copied backup). Everything secret a device holds
— its key pairs per version, a security admin's signing key, the city-wide subject key
— is sealed with a key stretched from the passphrase by argon2id, so an attacker with
the file must pay the KDF cost for every guess. The pinned admin keys and the last
verified directory checkpoint are not secret, but they are sealed too: they are the
device's trust anchors, and the MAC makes them tamper-evident (threat: someone with
write access to the disk swapping in their own admin key).

File format (UTF-8, canonical JSON, one object)::

    {"format": "stafett-keystore", "v": 1,
     "kdf": {"alg": "argon2id", "opslimit": int, "memlimit": int},
     "salt": b64(16 bytes), "check": b64(16 bytes),
     "nonce": b64(24 bytes), "box": b64(SecretBox ciphertext incl. 16-byte MAC)}

``argon2id(passphrase, salt, opslimit, memlimit)`` yields 64 bytes: the first 32 are the
XSalsa20-Poly1305 (``SecretBox``) key, the next 16 are stored as ``check``. The box
holds the canonical JSON payload (see :func:`_payload`). The KDF parameters are in the
file so a keystore written under old defaults still opens after the defaults change.

Why ``check`` exists: to the MAC, a wrong passphrase and a flipped ciphertext bit are
the same event (the tag does not verify under the derived key; it cannot tell which
input was wrong). The check value, derived from the same argon2id output, separates
the two: if ``check`` does not match, the passphrase is wrong (or the header itself was
altered, which we cannot tell apart); if it matches but the MAC fails, the passphrase
is right and the ciphertext is damaged. It does not help an attacker: testing a guess
against ``check`` costs the same argon2id run as testing it against the MAC. Anything
that fails before the KDF (not JSON, unknown format/version, wrong field sizes, KDF
parameters out of bounds) is reported as corrupt.
"""

from __future__ import annotations

import hmac
import unicodedata
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from keys.crypto.canonical import NotCanonical, b64d, b64e, canonical_json, parse_canonical
from keys.crypto.files import write_private
from keys.crypto.keypairs import (
    DeviceId,
    DeviceKeyPair,
    EncryptionPrivateKey,
    KeyId,
    SigningKey,
    VerifyKey,
)
from keys.errors import (
    KeyIdInvalid,
    KeyInvalid,
    KeystoreCorrupt,
    KeystoreError,
    KeystoreWeakKdf,
    KeystoreWrongPassphrase,
)

_FORMAT = "stafett-keystore"
_VERSION = 1
_KDF_ALG = "argon2id"
_SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES  # 16
_CHECK_BYTES = 16
_KEY_BYTES = nacl.secret.SecretBox.KEY_SIZE  # 32
_NONCE_BYTES = nacl.secret.SecretBox.NONCE_SIZE  # 24
_MAX_FILE_BYTES = 1 << 20  # a keystore is a few KiB; refuse to slurp anything huge
# Bounds on the KDF parameters read from a file. Threat: a damaged or planted file that
# asks for terabytes of memory or hours of work (denial of service on unlock).
_MAX_OPSLIMIT = 16
_MAX_MEMLIMIT = 2 << 30  # 2 GiB
_SUBJECT_KEY_BYTES = 32


class KdfCost(Enum):
    """argon2id cost presets as ``(opslimit, memlimit)``."""

    #: libsodium's minimum (1 pass, 8 KiB). Offers no protection: for tests only.
    TEST = (nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)
    #: 2 passes, 64 MiB (~0.1 s).
    INTERACTIVE = (
        nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
        nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
    )
    #: 3 passes, 256 MiB (~0.5-1 s).
    MODERATE = (nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE)

    @property
    def opslimit(self) -> int:
        return int(self.value[0])

    @property
    def memlimit(self) -> int:
        return int(self.value[1])


# MODERATE, not INTERACTIVE: the threat the keystore answers is offline guessing on a
# stolen laptop, and the keys it guards open case files about people under threat. The
# store is unlocked once per CLI run or bridge start, so ~1 s is paid rarely, while every
# guess costs an attacker 4x the memory-hard work of INTERACTIVE. 256 MiB fits officers'
# laptops and integration hosts alike.
DEFAULT_COST = KdfCost.MODERATE


@dataclass(eq=False)
class Keystore:
    """What one device (or one security admin) keeps secret, plus its trust anchors.

    ``owner`` is a device id ``unit/name`` or, for an admin-only store, the admin kid.
    ``keypairs`` maps key version to key pair (empty for an admin-only store).
    Not compared with ``==`` (no timing-unsafe comparison of secrets); ``repr`` shows
    only public facts.
    """

    owner: str
    keypairs: dict[int, DeviceKeyPair] = field(default_factory=dict)
    admin_key: SigningKey | None = None
    subject_key: bytes | None = None
    pinned_admins: dict[str, VerifyKey] = field(default_factory=dict)
    known_checkpoint: tuple[int, str] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field (also run before saving: fields are mutable)."""
        _check_owner(self.owner)
        for version, pair in self.keypairs.items():
            self._check_pair(pair)
            if version != pair.kid.version:
                raise KeystoreError("key pair stored under the wrong version")
        if self.admin_key is not None and not isinstance(self.admin_key, SigningKey):
            raise KeyInvalid("the admin key must be a SigningKey")
        if self.subject_key is not None and (
            not isinstance(self.subject_key, bytes) or len(self.subject_key) != _SUBJECT_KEY_BYTES
        ):
            raise KeyInvalid("the subject key must be 32 bytes")
        for kid, verify_key in self.pinned_admins.items():
            KeyId.parse(kid)
            if not isinstance(verify_key, VerifyKey):
                raise KeyInvalid("pinned admin keys must be VerifyKey objects")
        if self.known_checkpoint is not None:
            _check_checkpoint(self.known_checkpoint)

    def current(self) -> DeviceKeyPair:
        """The newest key version: the one that signs and that senders encrypt to."""
        if not self.keypairs:
            raise KeystoreError("this keystore holds no device keys")
        return self.keypairs[max(self.keypairs)]

    def add_version(self, pair: DeviceKeyPair) -> None:
        """Add the key pair of a rotation. Versions only ever grow.

        A version number is never reused: the directory pins each kid to one public key,
        so a second key under an old number would either be refused or, worse, shadow it.
        """
        self._check_pair(pair)
        if self.keypairs and pair.kid.version <= max(self.keypairs):
            raise KeystoreError("a new key version must be greater than every version held")
        self.keypairs[pair.kid.version] = pair

    def destroy_version(self, version: int) -> None:
        """Forget the private keys of an old version (crypto-shredding after rotation).

        The newest version cannot be destroyed: the device would be left without a key,
        and dropping the maximum would let its number be issued again.
        """
        if version not in self.keypairs:
            raise KeystoreError("no such key version in this keystore")
        if version == max(self.keypairs):
            raise KeystoreError("the current key version cannot be destroyed; rotate first")
        del self.keypairs[version]

    def _check_pair(self, pair: DeviceKeyPair) -> None:
        if not isinstance(pair, DeviceKeyPair):
            raise KeystoreError("expected a DeviceKeyPair")
        if str(pair.kid.device) != self.owner:
            raise KeystoreError("the key pair belongs to another device")

    def __repr__(self) -> str:
        versions = ",".join(str(v) for v in sorted(self.keypairs))
        return (
            f"Keystore(owner={self.owner!r}, versions=[{versions}], "
            f"admin_key={'<secret>' if self.admin_key is not None else 'no'}, "
            f"subject_key={'<secret>' if self.subject_key is not None else 'no'}, "
            f"pinned_admins={sorted(self.pinned_admins)!r}, "
            f"known_checkpoint={self.known_checkpoint!r})"
        )


def _check_owner(owner: str) -> None:
    if not isinstance(owner, str):
        raise KeyIdInvalid("keystore owner must be a device id or an admin kid")
    try:
        DeviceId.parse(owner)
    except KeyIdInvalid:
        KeyId.parse(owner)  # an admin-only store is owned by the admin's kid


def _check_checkpoint(checkpoint: tuple[int, str]) -> None:
    size, head = checkpoint
    if type(size) is not int or size < 0:
        raise KeystoreError("checkpoint size must be a non-negative integer")
    if not isinstance(head, str) or len(head) != 64 or head.strip("0123456789abcdef"):
        raise KeystoreError("checkpoint head must be 64 lower-case hex characters")


# --- payload (what the box holds) -------------------------------------------------------
def _payload(store: Keystore) -> dict[str, Any]:
    """The sealed payload: ``{"owner", "keypairs": [{"kid", "signing_seed",
    "encryption_secret"}] (by version), "admin_key", "subject_key": b64 | null,
    "pinned_admins": {kid: b64}, "known_checkpoint": {"size", "head"} | null}``."""
    return {
        "owner": store.owner,
        "keypairs": [
            {
                "kid": str(pair.kid),
                "signing_seed": b64e(pair.signing_key.seed()),
                "encryption_secret": b64e(pair.encryption_key.secret_bytes()),
            }
            for _, pair in sorted(store.keypairs.items())
        ],
        "admin_key": b64e(store.admin_key.seed()) if store.admin_key is not None else None,
        "subject_key": b64e(store.subject_key) if store.subject_key is not None else None,
        "pinned_admins": {kid: key.b64() for kid, key in store.pinned_admins.items()},
        "known_checkpoint": (
            {"size": store.known_checkpoint[0], "head": store.known_checkpoint[1]}
            if store.known_checkpoint is not None
            else None
        ),
    }


def _from_payload(data: Any) -> Keystore:
    if not isinstance(data, dict):
        raise TypeError("payload is not an object")
    pairs: dict[int, DeviceKeyPair] = {}
    for item in data["keypairs"]:
        kid = KeyId.parse(item["kid"])
        pairs[kid.version] = DeviceKeyPair(
            kid,
            SigningKey(b64d(item["signing_seed"], size=32)),
            EncryptionPrivateKey(b64d(item["encryption_secret"], size=32)),
        )
    admin = data["admin_key"]
    subject = data["subject_key"]
    checkpoint = data["known_checkpoint"]
    return Keystore(
        owner=data["owner"],
        keypairs=pairs,
        admin_key=SigningKey(b64d(admin, size=32)) if admin is not None else None,
        subject_key=b64d(subject, size=_SUBJECT_KEY_BYTES) if subject is not None else None,
        pinned_admins={kid: VerifyKey.from_b64(key) for kid, key in data["pinned_admins"].items()},
        known_checkpoint=(checkpoint["size"], checkpoint["head"]) if checkpoint else None,
    )


# --- KDF ----------------------------------------------------------------------------------
def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> tuple[bytes, bytes]:
    # NFC so that "å" typed as one code point or as "a" + ring gives the same key: the
    # same officer on a different keyboard or OS must still open the store.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    out = nacl.pwhash.argon2id.kdf(
        _KEY_BYTES + _CHECK_BYTES, secret, salt, opslimit=opslimit, memlimit=memlimit
    )
    return bytes(out[:_KEY_BYTES]), bytes(out[_KEY_BYTES:])


# --- save / load --------------------------------------------------------------------------
def save_keystore(
    path: Path, store: Keystore, passphrase: str, *, cost: KdfCost = DEFAULT_COST
) -> None:
    """Encrypt ``store`` under ``passphrase`` and write it atomically with mode 0600.

    Written to a temp file in the same directory, fsynced, then renamed over ``path``:
    a crash leaves either the old or the new keystore, never a half-written one (threat:
    losing every device key to a power cut mid-rotation).
    """
    if not isinstance(passphrase, str) or not passphrase:
        raise KeystoreError("the passphrase must not be empty")
    store.validate()
    salt = nacl.utils.random(_SALT_BYTES)
    nonce = nacl.utils.random(_NONCE_BYTES)
    key, check = _derive(passphrase, salt, cost.opslimit, cost.memlimit)
    box = nacl.secret.SecretBox(key).encrypt(canonical_json(_payload(store)), nonce).ciphertext
    container = {
        "format": _FORMAT,
        "v": _VERSION,
        "kdf": {"alg": _KDF_ALG, "opslimit": cost.opslimit, "memlimit": cost.memlimit},
        "salt": b64e(salt),
        "check": b64e(check),
        "nonce": b64e(nonce),
        "box": b64e(bytes(box)),
    }
    try:
        write_private(Path(path), canonical_json(container))
    except OSError as exc:
        # strerror ("Permission denied", "No space left on device") says what to fix
        # and holds nothing secret.
        raise KeystoreError(f"the keystore could not be written: {exc.strerror}") from None


def load_keystore(path: Path, passphrase: str, *, min_cost: KdfCost | None = None) -> Keystore:
    """Open a keystore. Raises KeystoreWrongPassphrase, KeystoreCorrupt or KeystoreError.

    ``min_cost``: refuse a file whose KDF parameters are below this preset (before
    running the KDF). Threat: a keystore written with test-mode cost (a leaked
    ``STAFETT_KDF_COST=test``, a copied test fixture) on a real device, which a thief
    with the file could brute-force cheaply; production callers should pass
    ``KdfCost.INTERACTIVE`` (or stricter). ``None`` accepts libsodium's minimum.

    Exceptions are raised ``from None``: a chained exception could carry decrypted
    payload text (``json.JSONDecodeError.doc``) into a traceback or a log.
    """
    if not isinstance(passphrase, str):
        raise KeystoreError("the passphrase must be text")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeystoreError("no keystore at the given path") from None
    except OSError:
        raise KeystoreError("the keystore file cannot be read") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise KeystoreCorrupt("the file is far too large to be a keystore")
    salt, check, nonce, box, opslimit, memlimit = _parse_container(raw)
    if min_cost is not None and (opslimit < min_cost.opslimit or memlimit < min_cost.memlimit):
        raise KeystoreWeakKdf("the keystore's key derivation is weaker than this device requires")
    key, expected_check = _derive(passphrase, salt, opslimit, memlimit)
    if not hmac.compare_digest(check, expected_check):
        raise KeystoreWrongPassphrase("the passphrase does not open this keystore")
    try:
        plaintext = nacl.secret.SecretBox(key).decrypt(box, nonce)
    except nacl.exceptions.CryptoError:
        # The check matched, so the passphrase is right: the ciphertext was altered.
        raise KeystoreCorrupt("the keystore's encrypted part is damaged") from None
    try:
        return _from_payload(parse_canonical(bytes(plaintext)))
    except Exception:
        # Authentic but unreadable: written by an incompatible version or a bug.
        raise KeystoreCorrupt("the keystore's contents are not understood") from None


def _parse_container(raw: bytes) -> tuple[bytes, bytes, bytes, bytes, int, int]:
    try:
        container = parse_canonical(raw)
    except NotCanonical:
        raise KeystoreCorrupt("not a Stafett keystore (not canonical JSON)") from None
    if not isinstance(container, dict) or container.get("format") != _FORMAT:
        raise KeystoreCorrupt("not a Stafett keystore")
    if container.get("v") != _VERSION:
        raise KeystoreCorrupt("unsupported keystore version")
    try:
        kdf = container["kdf"]
        if kdf["alg"] != _KDF_ALG:
            raise KeystoreCorrupt("unsupported key derivation")
        opslimit, memlimit = kdf["opslimit"], kdf["memlimit"]
        if type(opslimit) is not int or type(memlimit) is not int:
            raise KeystoreCorrupt("KDF parameters must be integers")
        salt = b64d(container["salt"], size=_SALT_BYTES)
        check = b64d(container["check"], size=_CHECK_BYTES)
        nonce = b64d(container["nonce"], size=_NONCE_BYTES)
        box = b64d(container["box"])
    except KeystoreCorrupt:
        raise
    except (KeyError, TypeError, NotCanonical):
        raise KeystoreCorrupt("the keystore header is incomplete or malformed") from None
    if not (KdfCost.TEST.opslimit <= opslimit <= _MAX_OPSLIMIT) or not (
        KdfCost.TEST.memlimit <= memlimit <= _MAX_MEMLIMIT
    ):
        raise KeystoreCorrupt("KDF parameters are out of bounds")
    if len(box) < nacl.secret.SecretBox.MACBYTES:
        raise KeystoreCorrupt("the encrypted part is truncated")
    return salt, check, nonce, box, opslimit, memlimit

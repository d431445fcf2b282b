"""Keystore: round trip, atomic 0600 writes, clear errors, no secrets in repr/errors."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from keys.crypto.canonical import canonical_json
from keys.crypto.keypairs import DeviceId, DeviceKeyPair, KeyId, SigningKey
from keys.crypto.keystore import DEFAULT_COST, KdfCost, Keystore, load_keystore, save_keystore
from keys.errors import (
    KeyInvalid,
    KeysError,
    KeystoreCorrupt,
    KeystoreError,
    KeystoreWrongPassphrase,
)
from tests.support.paths import TEST_DATA

PASS = "korrekt häst batteri häftklammer"
DEVICE = DeviceId.parse("so-nordost/anna")


def _device_store() -> Keystore:
    admin = SigningKey.generate()
    return Keystore(
        owner=str(DEVICE),
        keypairs={1: DeviceKeyPair.generate(DEVICE.key(1))},
        subject_key=os.urandom(32),
        pinned_admins={"admin/root/1": admin.verify_key},
        known_checkpoint=(7, "ab" * 32),
    )


def _save(path: Path, store: Keystore, passphrase: str = PASS) -> None:
    save_keystore(path, store, passphrase, cost=KdfCost.TEST)


def _secrets_of(store: Keystore) -> list[bytes]:
    out = [p.signing_key.seed() for p in store.keypairs.values()]
    out += [p.encryption_key.secret_bytes() for p in store.keypairs.values()]
    if store.admin_key is not None:
        out.append(store.admin_key.seed())
    if store.subject_key is not None:
        out.append(store.subject_key)
    return out


def _spellings(secret: bytes) -> list[str]:
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        repr(secret),
    ]


# --- round trip ---------------------------------------------------------------------------
def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    store = _device_store()
    path = tmp_path / "anna.keystore"
    _save(path, store)
    loaded = load_keystore(path, PASS)
    assert loaded.owner == store.owner
    assert loaded.keypairs.keys() == {1}
    assert loaded.current().kid == KeyId.parse("so-nordost/anna/1")
    assert loaded.current().signing_key == store.current().signing_key
    assert loaded.current().encryption_key == store.current().encryption_key
    assert loaded.subject_key == store.subject_key
    assert loaded.pinned_admins == store.pinned_admins
    assert loaded.known_checkpoint == (7, "ab" * 32)
    assert loaded.admin_key is None


def test_admin_only_store_round_trips(tmp_path: Path) -> None:
    admin = SigningKey.generate()
    store = Keystore(owner="admin/root/1", admin_key=admin)
    path = tmp_path / "admin.keystore"
    _save(path, store)
    loaded = load_keystore(path, PASS)
    assert loaded.keypairs == {}
    assert loaded.admin_key == admin
    assert loaded.subject_key is None
    assert loaded.known_checkpoint is None
    with pytest.raises(KeystoreError):
        loaded.current()


def test_passphrase_is_unicode_normalised(tmp_path: Path) -> None:
    # "å" as one code point (NFC) and as "a" + combining ring (NFD) must open the same
    # store: the same officer may type it on another OS.
    path = tmp_path / "ks"
    _save(path, _device_store(), "lösenord-\u00e5")
    assert load_keystore(path, "lösenord-a\u030a").owner == str(DEVICE)


def test_kdf_params_are_recorded_and_used_on_load(tmp_path: Path) -> None:
    path = tmp_path / "ks"
    save_keystore(path, _device_store(), PASS, cost=KdfCost.TEST)
    header = json.loads(path.read_bytes())
    assert header["kdf"] == {
        "alg": "argon2id",
        "opslimit": KdfCost.TEST.opslimit,
        "memlimit": KdfCost.TEST.memlimit,
    }
    assert header["format"] == "stafett-keystore"
    assert header["v"] == 1
    assert len(base64.b64decode(header["salt"])) == 16
    assert len(base64.b64decode(header["nonce"])) == 24


def test_default_cost_is_moderate() -> None:
    assert DEFAULT_COST is KdfCost.MODERATE
    assert KdfCost.TEST.memlimit < KdfCost.INTERACTIVE.memlimit < KdfCost.MODERATE.memlimit


def test_each_save_uses_fresh_salt_and_nonce(tmp_path: Path) -> None:
    store = _device_store()
    _save(tmp_path / "a", store)
    _save(tmp_path / "b", store)
    a, b = json.loads((tmp_path / "a").read_bytes()), json.loads((tmp_path / "b").read_bytes())
    assert a["salt"] != b["salt"]
    assert a["nonce"] != b["nonce"]
    assert a["box"] != b["box"]


# --- the file on disk -----------------------------------------------------------------------
def test_file_mode_is_0600_and_no_temp_files_remain(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the most permissive umask: the mode must not depend on it
    try:
        path = tmp_path / "ks"
        _save(path, _device_store())
        _save(path, _device_store())  # overwrite goes through the same temp+rename
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ks"]


def test_file_contains_no_secret_in_any_spelling(tmp_path: Path) -> None:
    store = _device_store()
    path = tmp_path / "ks"
    _save(path, store)
    text = path.read_text()
    for secret in _secrets_of(store):
        for spelling in _spellings(secret):
            assert spelling not in text
    assert PASS not in text


def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "ks"
    _save(path, _device_store())
    before = path.read_bytes()
    broken = _device_store()
    broken.subject_key = b"short"  # mutated after construction: caught before writing
    with pytest.raises(KeyInvalid):
        _save(path, broken)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ks"]


def test_failed_rename_removes_the_temp_file(tmp_path: Path) -> None:
    # A directory where the keystore should go makes os.replace fail after the temp
    # file was written: the half-done temp file (holding ciphertext) must not remain.
    target = tmp_path / "ks"
    target.mkdir()
    with pytest.raises(KeystoreError, match="could not be written"):
        _save(target, _device_store())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ks"]
    assert list(target.iterdir()) == []


def test_empty_passphrase_refused(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError):
        _save(tmp_path / "ks", _device_store(), "")


# --- errors on load -------------------------------------------------------------------------
def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ks"
    _save(path, _device_store())
    with pytest.raises(KeystoreWrongPassphrase) as info:
        load_keystore(path, PASS + "!")
    assert info.value.code == "keystore_wrong_passphrase"
    assert PASS not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def _tamper(path: Path, field: str, value: object) -> None:
    container = json.loads(path.read_bytes())
    container[field] = value
    path.write_bytes(canonical_json(container))


def test_flipped_ciphertext_bit_is_corrupt_not_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "ks"
    _save(path, _device_store())
    box = bytearray(base64.b64decode(json.loads(path.read_bytes())["box"]))
    box[20] ^= 0x01
    _tamper(path, "box", base64.b64encode(bytes(box)).decode())
    with pytest.raises(KeystoreCorrupt) as info:
        load_keystore(path, PASS)
    assert info.value.__cause__ is None


def test_altered_salt_reads_as_wrong_passphrase(tmp_path: Path) -> None:
    # Salt or KDF parameters feed the key derivation: changing them is, to the file,
    # indistinguishable from typing another passphrase.
    path = tmp_path / "ks"
    _save(path, _device_store())
    _tamper(path, "salt", base64.b64encode(b"\x00" * 16).decode())
    with pytest.raises(KeystoreWrongPassphrase):
        load_keystore(path, PASS)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json at all",
        b"\xff\xfe\x00",
        b"[]",
        b'{"format":"something-else","v":1}',
        b'{"format":"stafett-keystore","v":2}',
        b'{"format":"stafett-keystore","v":1}',
        b'{"v": 1, "format": "stafett-keystore"}',  # not canonical
    ],
)
def test_garbage_files_are_corrupt(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ks"
    path.write_bytes(content)
    with pytest.raises(KeystoreCorrupt):
        load_keystore(path, PASS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("salt", "AAAA"),  # wrong size
        ("nonce", base64.b64encode(b"x" * 23).decode()),
        ("check", "not base64!"),
        ("box", ""),  # shorter than a MAC
        ("kdf", {"alg": "scrypt", "opslimit": 1, "memlimit": 8192}),
        ("kdf", {"alg": "argon2id", "opslimit": 1, "memlimit": 1 << 40}),  # memory bomb
        ("kdf", {"alg": "argon2id", "opslimit": 1000, "memlimit": 8192}),  # time bomb
        ("kdf", {"alg": "argon2id", "opslimit": True, "memlimit": 8192}),
        ("kdf", {"alg": "argon2id", "opslimit": 0, "memlimit": 8192}),
        ("kdf", None),
    ],
)
def test_damaged_header_is_corrupt(tmp_path: Path, field: str, value: object) -> None:
    path = tmp_path / "ks"
    _save(path, _device_store())
    _tamper(path, field, value)
    with pytest.raises(KeystoreCorrupt):
        load_keystore(path, PASS)


def test_truncated_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "ks"
    _save(path, _device_store())
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(KeystoreCorrupt):
        load_keystore(path, PASS)


def test_missing_file_is_a_keystore_error(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError) as info:
        load_keystore(tmp_path / "nope", PASS)
    assert info.value.__cause__ is None


def test_directory_instead_of_file_is_a_keystore_error(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError):
        load_keystore(tmp_path, PASS)


# --- secrets never leak -------------------------------------------------------------------
def test_repr_and_logs_hold_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    store = _device_store()
    store.admin_key = SigningKey.generate()
    shown = repr(store) + str(store)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("store %s %r", store, store)
    shown += caplog.text
    for secret in _secrets_of(store):
        for spelling in _spellings(secret):
            assert spelling not in shown
    assert "so-nordost/anna" in shown


# --- versions -----------------------------------------------------------------------------
def test_rotation_then_crypto_shredding(tmp_path: Path) -> None:
    store = _device_store()
    old = store.current()
    new = DeviceKeyPair.generate(DEVICE.key(2))
    store.add_version(new)
    assert store.current() is new
    store.destroy_version(1)
    assert set(store.keypairs) == {2}
    path = tmp_path / "ks"
    _save(path, store)
    text = path.read_text()
    loaded = load_keystore(path, PASS)
    assert set(loaded.keypairs) == {2}
    # the destroyed key is gone from the file, not merely hidden
    for spelling in _spellings(old.signing_key.seed()):
        assert spelling not in text
    assert all(p.signing_key != old.signing_key for p in loaded.keypairs.values())


def test_versions_only_grow() -> None:
    store = _device_store()
    with pytest.raises(KeystoreError):
        store.add_version(DeviceKeyPair.generate(DEVICE.key(1)))
    store.add_version(DeviceKeyPair.generate(DEVICE.key(3)))
    with pytest.raises(KeystoreError):
        store.add_version(DeviceKeyPair.generate(DEVICE.key(2)))


def test_current_version_cannot_be_destroyed() -> None:
    store = _device_store()
    with pytest.raises(KeystoreError):
        store.destroy_version(1)
    with pytest.raises(KeystoreError):
        store.destroy_version(9)


def test_key_pair_of_another_device_refused() -> None:
    store = _device_store()
    with pytest.raises(KeystoreError):
        store.add_version(DeviceKeyPair.generate(KeyId.parse("so-nordost/bertil/2")))
    with pytest.raises(KeystoreError):
        Keystore(owner="sav/eva", keypairs={1: DeviceKeyPair.generate(DEVICE.key(1))})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"owner": "not an id"},
        {"owner": "so-nordost/anna", "subject_key": b"\x00" * 31},
        {"owner": "so-nordost/anna", "known_checkpoint": (-1, "00" * 32)},
        {"owner": "so-nordost/anna", "known_checkpoint": (1, "XY" * 32)},
        {"owner": "so-nordost/anna", "pinned_admins": {"root": SigningKey.generate().verify_key}},
    ],
)
def test_invalid_fields_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(KeysError):
        Keystore(**kwargs)  # type: ignore[arg-type]


def test_default_cost_round_trips(tmp_path: Path) -> None:
    # One real MODERATE derivation (~1-2 s): the load-side bounds must admit the
    # parameters the default writes, or every production keystore would be "corrupt".
    path = tmp_path / "ks"
    save_keystore(path, _device_store(), PASS)
    assert load_keystore(path, PASS).owner == str(DEVICE)


# --- a stored v1 file: the format and the KDF input must stay readable -----------------------
VECTOR = TEST_DATA / "keystore" / "v1-test-cost.json"


def test_stored_v1_keystore_still_opens() -> None:
    """A file written by the first version (deterministic keys, TEST cost).

    Fails if the container format, the payload layout, the KDF split or the passphrase
    normalisation (NFC) ever change without a migration: old keystores on officers'
    laptops would stop opening.
    """
    store = load_keystore(VECTOR, "vector-lösenord-\u00e5")  # NFC "å"
    pair = store.current()
    assert str(pair.kid) == "so-nordost/anna/2"
    assert pair.signing_key == SigningKey(bytes(range(32)))
    assert pair.encryption_key.secret_bytes() == bytes(range(32, 64))
    assert store.subject_key == bytes(range(64, 96))
    assert store.pinned_admins == {"admin/root/1": SigningKey(bytes(range(96, 128))).verify_key}
    assert store.known_checkpoint == (12, "0f" * 32)
    assert load_keystore(VECTOR, "vector-lösenord-a\u030a").owner == "so-nordost/anna"  # NFD
    with pytest.raises(KeystoreWrongPassphrase):
        load_keystore(VECTOR, "vector-lösenord-a")

"""Every Wycheproof Ed25519 and X25519 case through our typed key objects.

Vectors: tests/data/wycheproof/ (google/wycheproof 0.9rc5, Apache-2.0, see LICENSE).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from nacl.bindings import crypto_scalarmult

from keys.crypto.keypairs import EncryptionPublicKey, VerifyKey
from keys.errors import KeyInvalid, SignatureInvalid
from tests.support.paths import TEST_DATA

DATA = TEST_DATA / "wycheproof"

# X25519 "acceptable" cases we must refuse: a low-order point makes the shared secret
# all zeros (anyone can read a sealed box to it), and a non-canonical encoding gives one
# key two spellings (the directory must have exactly one).
REFUSED_X25519_FLAGS = {"LowOrderPublic", "ZeroSharedSecret", "NonCanonicalPublic"}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def _cases(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    data = _load(name)
    cases = [(group, test) for group in data["testGroups"] for test in group["tests"]]
    # the file says how many cases it holds: none may be skipped silently
    assert len(cases) == data["numberOfTests"]
    return cases


ED25519 = _cases("ed25519_test.json")
X25519 = _cases("x25519_test.json")


def _id(case: tuple[dict[str, Any], dict[str, Any]]) -> str:
    test = case[1]
    return f"tc{test['tcId']}-{test['result']}-{'+'.join(test['flags'])}"


def test_vector_files_are_the_expected_ones() -> None:
    assert _load("ed25519_test.json")["algorithm"] == "EDDSA"
    assert _load("x25519_test.json")["algorithm"] == "XDH"
    assert len(ED25519) == 151
    assert len(X25519) == 518
    assert {t["result"] for _, t in ED25519} == {"valid", "invalid"}
    assert {t["result"] for _, t in X25519} == {"valid", "acceptable"}


@pytest.mark.parametrize("case", ED25519, ids=_id)
def test_ed25519(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    group, test = case
    assert group["publicKey"]["curve"] == "edwards25519"
    # Every group key is a valid public key: our point checks must not refuse it.
    key = VerifyKey(bytes.fromhex(group["publicKey"]["pk"]))
    message, signature = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    if test["result"] == "valid":
        key.verify(message, signature)
        assert key.is_valid(message, signature)
    else:
        assert test["result"] == "invalid"
        with pytest.raises(SignatureInvalid):
            key.verify(message, signature)
        assert not key.is_valid(message, signature)


@pytest.mark.parametrize("case", X25519, ids=_id)
def test_x25519(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    group, test = case
    assert group["curve"] == "curve25519"
    public = bytes.fromhex(test["public"])
    refuse = test["result"] == "acceptable" and bool(REFUSED_X25519_FLAGS & set(test["flags"]))
    if refuse:
        with pytest.raises(KeyInvalid):
            EncryptionPublicKey(public)
        return
    assert test["result"] in {"valid", "acceptable"}  # acceptable here: Twist and the like
    key = EncryptionPublicKey(public)
    assert bytes(key) == public
    if test["result"] == "valid":
        shared = crypto_scalarmult(bytes.fromhex(test["private"]), bytes(key))
        assert shared.hex() == test["shared"]


def test_every_refusal_flag_occurs() -> None:
    # Guards the parametrisation: if the data lost these cases the test above would
    # pass vacuously.
    seen = {flag for _, t in X25519 if t["result"] == "acceptable" for flag in t["flags"]}
    assert seen >= REFUSED_X25519_FLAGS | {"Twist"}

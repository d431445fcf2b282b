"""Audit checkpoints with the signer bound, and verification against a pinned key set."""

from __future__ import annotations

import pytest

from keys.crypto.keypairs import SigningKey
from keys.errors import AuditCheckpointSignatureInvalid, AuditEntryInvalid
from keys.protocol.auditlog import AuditHead, sign_audit_checkpoint, verify_audit_checkpoint

HEAD = AuditHead(3, "ab" * 32)


def test_signer_is_bound_and_any_key_of_the_set_verifies() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    signed = sign_audit_checkpoint(HEAD, 100, new, "gateway/main/2")
    assert signed["signer"] == "gateway/main/2"
    keys = [old.verify_key, new.verify_key]
    assert verify_audit_checkpoint(signed, keys).signer == "gateway/main/2"
    with pytest.raises(AuditCheckpointSignatureInvalid):
        verify_audit_checkpoint(signed, old.verify_key)
    # The kid is signed: relabelling a checkpoint breaks it.
    with pytest.raises(AuditCheckpointSignatureInvalid):
        verify_audit_checkpoint({**signed, "signer": "gateway/main/1"}, keys)
    with pytest.raises(AuditEntryInvalid):
        verify_audit_checkpoint({**signed, "signer": "../x"}, keys)


def test_checkpoints_signed_before_the_signer_was_bound_still_verify() -> None:
    key = SigningKey.generate()
    legacy = sign_audit_checkpoint(HEAD, 100, key)
    assert "signer" not in legacy
    assert verify_audit_checkpoint(legacy, key.verify_key).size == 3
    # A stored legacy row is now served with its signer column: still the same key's word.
    assert verify_audit_checkpoint({**legacy, "signer": "gateway/main/1"}, [key.verify_key])
    with pytest.raises(AuditCheckpointSignatureInvalid):
        verify_audit_checkpoint(legacy, [SigningKey.generate().verify_key])

"""The audit hash chain: every kind of tampering is detected with its own code."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from domain_factories import NOW, SUBJECT, load_schema

from keys.crypto.canonical import b64d, canonical_json, hash32
from keys.crypto.keypairs import SigningKey
from keys.errors import (
    AuditChainBroken,
    AuditCheckpointMismatch,
    AuditCheckpointSignatureInvalid,
    AuditDataForbidden,
    AuditEntryAltered,
    AuditEntryInvalid,
    AuditTruncated,
    SignatureInvalid,
)
from keys.protocol.auditlog import (
    CHECKPOINT_DOMAIN,
    ZERO_HASH,
    AuditHead,
    check_audit_data,
    entry_hash,
    make_audit_entry,
    sign_audit_checkpoint,
    verify_audit_chain,
    verify_audit_checkpoint,
)

GATEWAY = SigningKey(bytes(range(32)))
OTHER = SigningKey(bytes(range(1, 33)))
SCHEMA = load_schema("audit-entry.json")

EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("consent_recorded", {"consent_id": "c1", "version": 1, "subject_ref": SUBJECT}),
    ("message_accepted", {"message_id": "m1", "consent_id": "c1", "category": "application"}),
    ("message_refused", {"code": "consent_expired", "sender": "sav/anna/1"}),
    ("message_delivered", {"message_id": "m1", "device": "las-a/eva/1"}),
    ("message_handed_over", {"message_id": "m1", "receipt_hash": "ab" * 32}),
    ("consent_withdrawn", {"consent_id": "c1", "reason": "subject_withdrew"}),
]


def chain(n: int = len(EVENTS)) -> list[dict[str, Any]]:
    head: AuditHead | None = None
    out = []
    for seq, (event, data) in enumerate(EVENTS[:n]):
        entry = make_audit_entry(head, seq, NOW + seq, event, data)
        head = entry.head
        out.append(entry.to_json())
    return out


def head_after(entries: list[dict[str, Any]], size: int) -> AuditHead:
    return AuditHead(size, entries[size - 1]["hash"]) if size else AuditHead.empty()


def ckpts(entries: list[dict[str, Any]], *sizes: int) -> list[dict[str, Any]]:
    return [sign_audit_checkpoint(head_after(entries, s), NOW + 100, GATEWAY) for s in sizes]


def verify(entries: list[dict[str, Any]], checkpoints: list[dict[str, Any]]) -> AuditHead:
    return verify_audit_chain(entries, checkpoints=checkpoints, gateway_key=GATEWAY.verify_key)


def rehash(entries: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    """What a careful forger does: recompute seq, prev_hash and hash from ``start`` on."""
    out = copy.deepcopy(entries)
    for i in range(start, len(out)):
        out[i]["seq"] = i
        out[i]["prev_hash"] = out[i - 1]["hash"] if i else ZERO_HASH
        out[i]["hash"] = entry_hash(out[i])
    return out


def test_an_honest_chain_verifies_to_its_head() -> None:
    entries = chain()
    head = verify(entries, ckpts(entries, 3, 6))
    assert head == AuditHead(6, entries[-1]["hash"])
    assert entries[0]["prev_hash"] == ZERO_HASH
    for i in range(1, 6):
        assert entries[i]["prev_hash"] == entries[i - 1]["hash"]


def test_the_entry_hash_is_the_documented_one() -> None:
    e = chain(1)[0]
    unhashed = {k: e[k] for k in ("seq", "prev_hash", "created", "event", "data")}
    assert e["hash"] == hash32(canonical_json(unhashed), b"stafett.audit").hex()


def test_an_empty_chain() -> None:
    assert verify([], []) == AuditHead.empty()
    assert verify([], ckpts([], 0)) == AuditHead.empty()


def test_edit_in_place_is_altered() -> None:
    entries = chain()
    entries[2]["data"]["code"] = "consent_unknown"
    with pytest.raises(AuditEntryAltered) as info:
        verify(entries, ckpts(chain(), 6))
    assert info.value.code == "audit_entry_altered"


def test_edit_with_its_own_hash_recomputed_breaks_the_chain() -> None:
    entries = chain()
    entries[2]["created"] += 1
    entries[2]["hash"] = entry_hash(entries[2])
    with pytest.raises(AuditChainBroken):
        verify(entries, [])


def test_edit_with_every_later_hash_recomputed_misses_the_checkpoint() -> None:
    honest = chain()
    forged = copy.deepcopy(honest)
    forged[1]["data"]["consent_id"] = "c2"
    forged = rehash(forged, 1)
    verify(forged, [])  # internally consistent: only a signed checkpoint can tell
    with pytest.raises(AuditCheckpointMismatch) as info:
        verify(forged, ckpts(honest, 6))
    assert info.value.code == "audit_checkpoint_mismatch"


def test_editing_the_last_entry_misses_the_checkpoint() -> None:
    honest = chain()
    forged = copy.deepcopy(honest)
    forged[5]["data"]["reason"] = "recorded_in_error"
    forged[5]["hash"] = entry_hash(forged[5])
    with pytest.raises(AuditCheckpointMismatch):
        verify(forged, ckpts(honest, 6))


def test_a_dropped_entry_breaks_the_chain() -> None:
    entries = chain()
    del entries[2]
    with pytest.raises(AuditChainBroken):
        verify(entries, [])


def test_a_dropped_entry_with_the_rest_rehashed_misses_the_checkpoint() -> None:
    honest = chain()
    forged = rehash(honest[:2] + honest[3:], 2)
    with pytest.raises(AuditCheckpointMismatch):
        verify(forged, ckpts(honest, 3))


def test_an_inserted_entry_breaks_the_chain() -> None:
    entries = chain()
    extra = make_audit_entry(
        head_after(entries, 3), 3, NOW, "message_recalled", {"message_id": "m1"}
    )
    entries.insert(3, extra.to_json())
    with pytest.raises(AuditChainBroken):
        verify(entries, [])


def test_reordered_entries_break_the_chain() -> None:
    entries = chain()
    entries[2], entries[3] = entries[3], entries[2]
    with pytest.raises(AuditChainBroken):
        verify(entries, [])


def test_reordered_and_renumbered_entries_break_the_chain() -> None:
    entries = chain()
    entries[2], entries[3] = entries[3], entries[2]
    entries[2]["seq"], entries[3]["seq"] = 2, 3
    with pytest.raises(AuditEntryAltered):  # seq is hashed
        verify(entries, [])
    for e in entries:
        e["hash"] = entry_hash(e)
    with pytest.raises(AuditChainBroken):  # prev_hash no longer links
        verify(entries, [])


def test_truncation_after_a_checkpoint_is_detected() -> None:
    entries = chain()
    with pytest.raises(AuditTruncated) as info:
        verify(entries[:4], ckpts(entries, 3, 6))
    assert isinstance(info.value, AuditCheckpointMismatch)
    assert info.value.code == "audit_truncated"
    # Entries appended after the last checkpoint may be cut without a signed trace:
    # that is why the gateway signs checkpoints often.
    assert verify(entries[:4], ckpts(entries, 3)) == head_after(entries, 4)


def test_a_forged_checkpoint_is_refused() -> None:
    entries = chain()
    ck = ckpts(entries, 6)[0]
    ck["size"] = 5
    with pytest.raises(AuditCheckpointSignatureInvalid) as info:
        verify(entries, [ck])
    assert isinstance(info.value, SignatureInvalid)
    with pytest.raises(AuditCheckpointSignatureInvalid):
        verify_audit_chain(entries, checkpoints=ckpts(entries, 6), gateway_key=OTHER.verify_key)


def test_checkpoint_signature_covers_the_documented_bytes() -> None:
    ck = ckpts(chain(), 6)[0]
    unsigned = {k: ck[k] for k in ("size", "head", "created")}
    GATEWAY.verify_key.verify(CHECKPOINT_DOMAIN + canonical_json(unsigned), b64d(ck["sig"]))
    assert verify_audit_checkpoint(ck, GATEWAY.verify_key).size == 6


def test_two_signed_heads_for_one_size_are_a_fork() -> None:
    honest = chain()
    forged = copy.deepcopy(honest)
    forged[5]["data"]["reason"] = "case_closed"
    forged = rehash(forged, 5)
    with pytest.raises(AuditCheckpointMismatch):
        verify(honest, ckpts(honest, 6) + ckpts(forged, 6))


def test_incremental_verification_from_a_known_head() -> None:
    entries = chain()
    start = verify(entries[:3], ckpts(entries, 3))
    head = verify_audit_chain(
        entries[3:], checkpoints=ckpts(entries, 3, 6), gateway_key=GATEWAY.verify_key, start=start
    )
    assert head == head_after(entries, 6)
    with pytest.raises(AuditChainBroken):
        verify_audit_chain(entries[4:], checkpoints=[], gateway_key=GATEWAY.verify_key, start=start)


def test_malformed_checkpoints_are_refused() -> None:
    ck = ckpts(chain(), 6)[0]
    for bad in ({**ck, "extra": 1}, {**ck, "sig": "x"}, {**ck, "head": "AB" * 32}):
        with pytest.raises(AuditEntryInvalid):
            verify_audit_checkpoint(bad, GATEWAY.verify_key)
    with pytest.raises(AuditEntryInvalid):
        sign_audit_checkpoint(AuditHead(0, "ab" * 32), NOW, GATEWAY)


# --- writing: the guard against content in the trail ----------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        {"body": "..."},
        {"plaintext": "..."},
        {"Content": "..."},
        {"passphrase": "hunter2"},
        {"key": "c2VjcmV0"},
        {"personnummer": "x"},
        {"outer": {"inner": [{"token": "t"}]}},
        {"note": "19900101-1234"},
        {"subject": "9001011234"},
        {"subject": "199001011234"},
        {"who": ["900101+1234"]},
    ],
)
def test_content_and_secrets_are_refused_in_audit_data(data: dict[str, Any]) -> None:
    with pytest.raises(AuditDataForbidden) as info:
        make_audit_entry(None, 0, NOW, "message_accepted", data)
    assert info.value.code == "audit_data_forbidden"
    for value in ("hunter2", "19900101-1234", "9001011234", "c2VjcmV0"):
        assert value not in str(info.value)


def test_ids_codes_and_hashes_are_allowed() -> None:
    for _, data in EVENTS:
        check_audit_data(data)
    check_audit_data({"sender": "so-nordost/anna/3", "created": 1_760_000_000, "size": 1234})


def test_oversized_data_is_refused() -> None:
    with pytest.raises(AuditDataForbidden):
        make_audit_entry(None, 0, NOW, "message_accepted", {"ids": ["m" * 40] * 300})


@pytest.mark.parametrize(
    ("prev", "seq", "event", "data", "error"),
    [
        (None, 1, "x", {}, AuditChainBroken),
        (AuditHead(3, "ab" * 32), 2, "x", {}, AuditChainBroken),
        (None, 0, "Message Accepted", {}, AuditEntryInvalid),
        (None, 0, "x", {"ratio": 0.5}, AuditEntryInvalid),
    ],
)
def test_bad_entries_are_refused_when_written(
    prev: AuditHead | None, seq: int, event: str, data: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        make_audit_entry(prev, seq, NOW, event, data)


def test_a_malformed_stored_entry_is_refused() -> None:
    entries = chain(2)
    del entries[1]["event"]
    with pytest.raises(AuditEntryInvalid):
        verify(entries, [])


# --- schema ------------------------------------------------------------------------------------
def test_entries_and_checkpoints_validate_against_the_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    entries = chain()
    for e in entries:
        validator.validate(e)
    ck_schema = {**SCHEMA["$defs"]["checkpoint"], "$defs": SCHEMA["$defs"]}
    jsonschema.Draft202012Validator(ck_schema).validate(ckpts(entries, 6)[0])
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**entries[0], "data": {"body": "x"}})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**entries[0], "extra": 1})

"""The audit trail as a pure hash chain: written by the gateway, checked by admins.

Every decision the gateway takes becomes an entry ``{"seq", "prev_hash", "created",
"event", "data"}``; its hash is ``hash32(canonical(entry), b"stafett.audit")`` and the
next entry names it as ``prev_hash``. The gateway periodically signs a checkpoint
``{"size", "head", "created", "signer", "sig"}`` (``b"stafett/v1/audit-ckpt"`` ‖
canonical without sig; ``signer`` is the signing key's kid, e.g. ``gateway/main/2``).
Checkpoints from before the signer was bound carry no ``signer`` in what is signed;
a stored one may still name it, so :func:`verify_audit_checkpoint` accepts a signature
over either form from a key of the verifier's pinned set (both forms are authentic
statements by that key; the kid is a label, never a reason to trust a key).
``stafett-keys audit verify`` then detects, each with its own code:

- an entry edited in place (its stored hash no longer matches) — ``audit_entry_altered``;
- an entry dropped, inserted or moved (seq or prev_hash breaks) — ``audit_chain_broken``;
- an edit with every later hash recomputed, or a cut-off tail (threat: an operator
  rewriting history to hide a handover) — the signed checkpoint no longer matches:
  ``audit_checkpoint_mismatch`` / ``audit_truncated``;
- a forged checkpoint — ``audit_checkpoint_signature_invalid``.

Entries hold ids, pseudonyms, codes and hashes — never content. :func:`check_audit_data`
refuses field names that would carry content or secrets and strings shaped like a
personnummer: a cheap guard against a future caller leaking them into a trail that is
kept far longer than any message.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keys.crypto.canonical import NotCanonical, b64d, b64e, canonical_json, hash32
from keys.crypto.keypairs import SIGNATURE_BYTES, SigningKey, VerifyKey
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

HASH_PERSON = b"stafett.audit"
CHECKPOINT_DOMAIN = b"stafett/v1/audit-ckpt"
ZERO_HASH = "0" * 64

ENTRY_FIELDS = frozenset({"seq", "prev_hash", "created", "event", "data"})
CHECKPOINT_FIELDS = frozenset({"size", "head", "created", "sig"})
SIGNED_CHECKPOINT_FIELDS = CHECKPOINT_FIELDS | {"signer"}
_KID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}/[0-9]{1,6}$")

# Field names that would carry content or secrets (compared lower-cased, at any depth).
FORBIDDEN_DATA_KEYS = frozenset(
    {
        "personnummer",
        "pnr",
        "samordningsnummer",
        "body",
        "plaintext",
        "content",
        "passphrase",
        "password",
        "key",
        "secret",
        "seed",
        "private_key",
        "token",
    }
)
MAX_DATA_BYTES = 8192  # an entry is ids and codes; anything bigger is a leak or a bug

_MAX_INT = 2**53 - 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_EVENT = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
# 10 or 12 digits, optionally with - or +: what a personnummer or samordningsnummer
# looks like when typed. Ids, hashes and kids in audit data never have this shape.
_PNR_SHAPE = re.compile(r"^\s*(?:[0-9]{2})?[0-9]{6}[-+]?[0-9]{4}\s*$", re.ASCII)


@dataclass(frozen=True)
class AuditHead:
    """The state of the chain after ``size`` entries: the hash of the last one."""

    size: int
    head: str

    @classmethod
    def empty(cls) -> AuditHead:
        return cls(0, ZERO_HASH)


@dataclass(frozen=True)
class AuditEntry:
    """One audit entry and its hash (``hash`` is not part of what is hashed)."""

    seq: int
    prev_hash: str
    created: int
    event: str
    data: dict[str, Any]
    hash: str

    def unhashed_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "created": self.created,
            "event": self.event,
            "data": self.data,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.unhashed_json(), "hash": self.hash}

    @property
    def head(self) -> AuditHead:
        """The chain head once this entry is appended."""
        return AuditHead(self.seq + 1, self.hash)


@dataclass(frozen=True)
class AuditCheckpoint:
    """A gateway-signed statement "the audit chain has ``size`` entries and this head"."""

    size: int
    head: str
    created: int
    sig: bytes
    signer: str | None = None  # the signing key's kid; None: a checkpoint from before

    def unsigned_json(self, *, with_signer: bool = True) -> dict[str, Any]:
        plain: dict[str, Any] = {"size": self.size, "head": self.head, "created": self.created}
        if with_signer and self.signer is not None:
            plain["signer"] = self.signer
        return plain

    def to_json(self) -> dict[str, Any]:
        return {**self.unsigned_json(), "sig": b64e(self.sig)}

    def signed_bytes(self, *, with_signer: bool = True) -> bytes:
        return CHECKPOINT_DOMAIN + canonical_json(self.unsigned_json(with_signer=with_signer))


def check_audit_data(data: object) -> None:
    """Refuse audit data that could carry content or secrets (see module docstring)."""
    if not isinstance(data, dict):
        raise AuditEntryInvalid("audit data is a JSON object")
    try:
        size = len(canonical_json(data))
    except NotCanonical as exc:
        raise AuditEntryInvalid("audit data is not canonical JSON") from exc
    if size > MAX_DATA_BYTES:
        raise AuditDataForbidden("audit data is too large for ids and codes")
    _walk(data)


def _walk(value: object) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            if name.lower() in FORBIDDEN_DATA_KEYS:
                # The field name is ours (code), not data: safe to say which one.
                raise AuditDataForbidden(f"audit data may not hold a {name.lower()!r} field")
            if _PNR_SHAPE.match(name):
                # A personnummer used as a key ({"19121212-1212": ...}) leaks like a value.
                raise AuditDataForbidden("audit data holds a key shaped like a personnummer")
            _walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk(item)
    elif isinstance(value, str) and _PNR_SHAPE.match(value):
        raise AuditDataForbidden("audit data holds something shaped like a personnummer")


def entry_hash(entry: Mapping[str, Any]) -> str:
    """Hex hash of an entry's five hashed fields."""
    unhashed = {k: entry[k] for k in ENTRY_FIELDS}
    try:
        return hash32(canonical_json(unhashed), HASH_PERSON).hex()
    except NotCanonical as exc:
        raise AuditEntryInvalid("audit entry is not canonical JSON") from exc


def make_audit_entry(
    prev: AuditHead | None, seq: int, created: int, event: str, data: Mapping[str, Any]
) -> AuditEntry:
    """Build the entry that follows ``prev`` (``None``: the first entry, seq 0)."""
    head = prev or AuditHead.empty()
    if seq != head.size:
        raise AuditChainBroken("seq does not continue the chain")
    plain = dict(data)
    check_audit_data(plain)
    entry = {"seq": seq, "prev_hash": head.head, "created": created, "event": event, "data": plain}
    _check_entry_shape(entry)
    return AuditEntry(seq, head.head, created, event, plain, entry_hash(entry))


def parse_audit_entry(obj: Mapping[str, Any] | AuditEntry) -> AuditEntry:
    """Check an entry's structure and its stored hash (if it carries one).

    The deny-list is *not* applied here: verification is about integrity, and an old
    entry must still be checkable after the deny-list grows.
    """
    if isinstance(obj, AuditEntry):
        obj = obj.to_json()
    if not isinstance(obj, Mapping) or not ENTRY_FIELDS <= set(obj) <= ENTRY_FIELDS | {"hash"}:
        raise AuditEntryInvalid("an audit entry is {seq, prev_hash, created, event, data[, hash]}")
    _check_entry_shape(obj)
    computed = entry_hash(obj)
    stored = obj.get("hash", computed)
    if not isinstance(stored, str) or not hmac.compare_digest(stored, computed):
        raise AuditEntryAltered(f"audit entry {obj['seq']} does not match its hash")
    return AuditEntry(
        obj["seq"], obj["prev_hash"], obj["created"], obj["event"], dict(obj["data"]), computed
    )


def _check_entry_shape(entry: Mapping[str, Any]) -> None:
    for name in ("seq", "created"):
        value = entry[name]
        if type(value) is not int or not 0 <= value <= _MAX_INT:
            raise AuditEntryInvalid(f"audit entry {name} must be an integer ≥ 0")
    if not isinstance(entry["prev_hash"], str) or not _HEX64.fullmatch(entry["prev_hash"]):
        raise AuditEntryInvalid("audit entry prev_hash must be 64 lower-case hex characters")
    if not isinstance(entry["event"], str) or not _EVENT.fullmatch(entry["event"]):
        raise AuditEntryInvalid("audit entry event must be a snake_case code")
    if not isinstance(entry["data"], dict):
        raise AuditEntryInvalid("audit entry data must be an object")


def sign_audit_checkpoint(
    head: AuditHead, created: int, key: SigningKey, signer: str | None = None
) -> dict[str, Any]:
    """The gateway signs ``(size, head)`` so that a rewritten history is detectable;
    ``signer`` (the key's kid) is bound into the signature."""
    unsigned = AuditCheckpoint(head.size, head.head, created, bytes(SIGNATURE_BYTES), signer)
    _check_checkpoint_shape(unsigned)
    return AuditCheckpoint(
        head.size, head.head, created, key.sign(unsigned.signed_bytes()), signer
    ).to_json()


GatewayKeys = VerifyKey | Iterable[VerifyKey]


def key_set(keys: GatewayKeys) -> list[VerifyKey]:
    """One pinned key or a set of them (current and previous after a rotation)."""
    return [keys] if isinstance(keys, VerifyKey) else list(keys)


def verify_audit_checkpoint(obj: Mapping[str, Any], keys: GatewayKeys) -> AuditCheckpoint:
    """Parse a checkpoint and check that a key of the pinned set signed it.

    Trust comes only from ``keys`` (pinned by the admins out of band): a checkpoint's
    ``signer`` is bound into the signature but never makes a key trusted. Every key is
    tried (Ed25519 verifies in microseconds and a set holds a handful), so a checkpoint
    verifies whichever instance and whichever key version of the gateway signed it.
    """
    if not isinstance(obj, Mapping) or not CHECKPOINT_FIELDS <= set(obj) <= (
        SIGNED_CHECKPOINT_FIELDS
    ):
        raise AuditEntryInvalid("an audit checkpoint is {size, head, created[, signer], sig}")
    if not isinstance(obj["sig"], str):
        raise AuditEntryInvalid("audit checkpoint sig must be base64")
    signer = obj.get("signer")
    if signer is not None and (not isinstance(signer, str) or not _KID.fullmatch(signer)):
        raise AuditEntryInvalid("audit checkpoint signer must be a key id")
    try:
        sig = b64d(obj["sig"], size=SIGNATURE_BYTES)
    except NotCanonical as exc:
        raise AuditEntryInvalid("audit checkpoint sig must be base64 of 64 bytes") from exc
    ckpt = AuditCheckpoint(obj["size"], obj["head"], obj["created"], sig, signer)
    _check_checkpoint_shape(ckpt)
    # With the signer bound (new) or, for a checkpoint signed before it was, without it.
    forms = [ckpt.signed_bytes()]
    if signer is not None:
        forms.append(ckpt.signed_bytes(with_signer=False))
    for key in key_set(keys):
        for signed in forms:
            try:
                key.verify(signed, ckpt.sig)
            except SignatureInvalid:
                continue
            return ckpt
    raise AuditCheckpointSignatureInvalid()


def _check_checkpoint_shape(ckpt: AuditCheckpoint) -> None:
    for value in (ckpt.size, ckpt.created):
        if type(value) is not int or not 0 <= value <= _MAX_INT:
            raise AuditEntryInvalid("audit checkpoint size and created must be integers ≥ 0")
    if not isinstance(ckpt.head, str) or not _HEX64.fullmatch(ckpt.head):
        raise AuditEntryInvalid("audit checkpoint head must be 64 lower-case hex characters")
    if ckpt.size == 0 and ckpt.head != ZERO_HASH:
        raise AuditEntryInvalid("an empty chain's head is 64 zeros")


def verify_audit_chain(
    entries: Iterable[Mapping[str, Any] | AuditEntry],
    *,
    checkpoints: Iterable[Mapping[str, Any]],
    gateway_key: GatewayKeys,
    start: AuditHead | None = None,
) -> AuditHead:
    """Verify entries (from ``start``, default the empty chain) against signed checkpoints.

    Returns the verified head. Every checkpoint must verify and must match the chain at
    its size; a checkpoint beyond the end means entries were cut off. Checkpoints below
    ``start`` belong to history the caller already verified and are skipped.
    """
    head = start or AuditHead.empty()
    expected: dict[int, str] = {}
    keys = key_set(gateway_key)
    for raw_ckpt in checkpoints:
        ckpt = verify_audit_checkpoint(raw_ckpt, keys)
        if ckpt.size < head.size:
            continue
        seen = expected.setdefault(ckpt.size, ckpt.head)
        if seen != ckpt.head:
            # Two signed heads for one size: the gateway signed a fork.
            raise AuditCheckpointMismatch(f"two checkpoints disagree at size {ckpt.size}")
    _check_at(head, expected)
    for raw in entries:
        entry = parse_audit_entry(raw)
        if entry.seq != head.size:
            raise AuditChainBroken(f"expected audit entry {head.size}, found {entry.seq}")
        if not hmac.compare_digest(entry.prev_hash, head.head):
            raise AuditChainBroken(f"audit entry {entry.seq} does not follow its predecessor")
        head = entry.head
        _check_at(head, expected)
    beyond = [size for size in expected if size > head.size]
    if beyond:
        raise AuditTruncated(f"the chain ends at {head.size}; a checkpoint covers {max(beyond)}")
    return head


def _check_at(head: AuditHead, expected: Mapping[int, str]) -> None:
    want = expected.get(head.size)
    if want is not None and not hmac.compare_digest(want, head.head):
        raise AuditCheckpointMismatch(f"the chain does not match the checkpoint at {head.size}")

"""Which gateway keys this device trusts, and how a rotated key earns that trust.

The gateway signs directory checkpoints (and audit checkpoints) so a client can hold
it to the history it served. The first gateway key is pinned out of band (``stafett
device init --gateway-key``, compared by fingerprint). After ``stafett-gateway identity
rotate`` the gateway signs with a new key; a client that knew only the old one would
call every new checkpoint forged, and a client that took any key the gateway serves
would trust whatever an attacker in the gateway's place serves.

The trust argument. A new key is accepted only when

1. ``GET /v1/gateway/key`` lists it (``keys``) with a ``rotations`` item whose audit
   entry is ``gateway_key_rotated`` naming its kid and fingerprint (BLAKE2b-128 of the
   public key: finding another key with that fingerprint is a 2^128 second preimage),
2. the entry matches its own hash (``parse_audit_entry``), and
3. the audit checkpoint given with it covers exactly that entry (``size`` = seq + 1,
   ``head`` = the entry's hash, which covers its fields) and verifies under a key this
   client **already trusts** (``verify_audit_checkpoint``; trust comes from this
   client's set, never from the checkpoint's ``signer`` label).

So every accepted key is vouched for by a chain of signatures leading back to the pin:
a forger needs the private key of a trusted gateway key — with which they could
already sign checkpoints as the gateway. Not defended: a stolen trusted key can
announce a key of the thief's; the announcement stays in the audit chain that the
admins verify with their own pins (``stafett-keys audit verify``), and the admin's
remedy is to pin explicitly (``stafett gateway-key pin``) on the devices. Keys are
never dropped by the gateway's answer: an old key stays trusted for the checkpoints it
signed before the rotation (and by instances that have not the new keystore yet).

Each accepted key is reported (:class:`GatewayKeyChange`) so the CLI warns loudly and
saves it beside the pin: a silent gateway key change is what a substitution looks like.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clients.errors import UnexpectedResponse
from clients.sdk.transport import Transport
from keys.crypto.keypairs import VerifyKey
from keys.errors import AuditError, DirectorySignatureInvalid, KeysError
from keys.protocol.auditlog import parse_audit_entry, verify_audit_checkpoint
from keys.protocol.checkpoint import Checkpoint

ROTATED = "gateway_key_rotated"


@dataclass(frozen=True)
class GatewayKeyChange:
    """A gateway key this client accepted because a trusted key announced it."""

    kid: str
    fingerprint: str
    previous: str  # the kid the audit entry names as the one handing over
    seq: int  # the audit entry that announced it
    verify_key: str  # base64, to save beside the pin


class GatewayTrust:
    """The gateway keys this client trusts: the pinned ones and those announced by them."""

    def __init__(self, keys: Iterable[VerifyKey]) -> None:
        self.keys: list[VerifyKey] = []
        for key in keys:
            if key not in self.keys:
                self.keys.append(key)
        if not self.keys:
            raise ValueError("a gateway trust needs at least one pinned key")

    def trusts(self, key: VerifyKey) -> bool:
        return key in self.keys

    def verify_checkpoint(self, checkpoint: Checkpoint) -> bool:
        """Whether a trusted key signed this directory checkpoint (every key is tried:
        a handful, microseconds each; the ``signer`` label decides nothing)."""
        for key in self.keys:
            try:
                checkpoint.verify(key)
            except DirectorySignatureInvalid:
                continue
            return True
        return False

    async def verify_directory_checkpoint(
        self, checkpoint: Checkpoint, transport: Transport
    ) -> list[GatewayKeyChange]:
        """Raise ``directory_signature_invalid`` unless a trusted key signed
        ``checkpoint``; a key unknown so far is looked for in the gateway's announced
        rotations first. Returns the keys accepted on the way."""
        if self.verify_checkpoint(checkpoint):
            return []
        learned = self.learn(await transport.request("GET", "/v1/gateway/key"))
        if not self.verify_checkpoint(checkpoint):
            raise DirectorySignatureInvalid(
                "checkpoint not signed by a trusted gateway key (nor by one it announced)"
            )
        return learned

    def learn(self, answer: Any) -> list[GatewayKeyChange]:
        """Accept every key of ``answer`` (``GET /v1/gateway/key``) announced by a
        trusted key, in as many rounds as a chain of rotations needs (1 → 2 → 3).
        Anything not announced that way is ignored, never an error: an older gateway
        answers without ``keys``, and a forged announcement must change nothing."""
        if not isinstance(answer, Mapping):
            raise UnexpectedResponse("gateway key answer is malformed")
        offered = _offered_keys(answer.get("keys"))
        rotations = answer.get("rotations")
        if not isinstance(rotations, list):
            return []
        learned: list[GatewayKeyChange] = []
        progress = True
        while progress:
            progress = False
            for item in rotations:
                change = self._announced(item, offered)
                if change is not None:
                    self.keys.append(offered[change.kid])
                    learned.append(change)
                    progress = True
        return learned

    def _announced(self, item: Any, offered: Mapping[str, VerifyKey]) -> GatewayKeyChange | None:
        if not isinstance(item, Mapping):
            return None
        try:
            entry = parse_audit_entry(item.get("entry"))  # type: ignore[arg-type]
            if entry.event != ROTATED:
                return None
            kid, fingerprint = entry.data.get("kid"), entry.data.get("fingerprint")
            new = offered.get(kid) if isinstance(kid, str) else None
            if new is None or self.trusts(new) or new.fingerprint() != fingerprint:
                return None
            # The only step that confers trust: a key we already trust signed a
            # checkpoint whose head is exactly this entry.
            checkpoint = verify_audit_checkpoint(item.get("checkpoint"), self.keys)  # type: ignore[arg-type]
        except (AuditError, KeysError, TypeError, KeyError):
            return None
        if checkpoint.size != entry.seq + 1 or checkpoint.head != entry.hash:
            return None
        return GatewayKeyChange(
            kid=str(kid),
            fingerprint=new.fingerprint(),
            previous=str(entry.data.get("previous", "")),
            seq=entry.seq,
            verify_key=new.b64(),
        )


def _offered_keys(value: Any) -> dict[str, VerifyKey]:
    offered: dict[str, VerifyKey] = {}
    if not isinstance(value, list):
        return offered
    for item in value:
        if not isinstance(item, Mapping):
            continue
        kid, b64 = item.get("kid"), item.get("verify_key")
        if not isinstance(kid, str) or not isinstance(b64, str):
            continue
        try:
            offered[kid] = VerifyKey.from_b64(b64)  # validated on entry (size, point)
        except KeysError:
            continue
    return offered

"""The security admin's client: signs with the admin key (directory appends, audit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clients.sdk import StafettClient
from clients.sdk.answers import as_list, as_object
from clients.sdk.transport import Signer
from keys.errors import KeystoreError
from keys.protocol.auditlog import AuditHead, GatewayKeys, verify_audit_chain

__all__ = ["StafettAdminClient"]


class StafettAdminClient(StafettClient):
    """A security admin: signs with the admin key (directory appends, audit trail)."""

    def _signer(self) -> Signer:
        if self.keystore.admin_key is None:
            raise KeystoreError("this keystore holds no security-admin key")
        return Signer(self.keystore.owner, self.keystore.admin_key)

    async def post_directory_entries(self, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Append signed entries (all or nothing); the gateway verifies each one."""
        answer = await self.transport.request(
            "POST", "/v1/directory/entries", json_body={"entries": [dict(e) for e in entries]}
        )
        return as_object(answer)

    async def audit_entries(self, after: int = -1, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Every audit entry with seq > ``after`` (all pages)."""
        out: list[dict[str, Any]] = []
        while True:
            answer = await self.transport.request(
                "GET", "/v1/audit/entries", query={"after": after, "limit": limit}
            )
            page = as_list(answer, "entries")
            out.extend(page)
            if len(page) < limit:
                return out
            after = int(page[-1]["seq"])

    async def audit_checkpoint(self) -> dict[str, Any]:
        return as_object(await self.transport.request("GET", "/v1/audit/checkpoint"))

    async def verify_audit(
        self, gateway_key: GatewayKeys, *, known_checkpoints: Sequence[Mapping[str, Any]] = ()
    ) -> AuditHead:
        """Fetch the whole audit chain and the signed checkpoint, and verify both.

        Raises ``audit_entry_altered`` / ``audit_chain_broken`` /
        ``audit_checkpoint_mismatch`` / ``audit_truncated`` for an edited, dropped,
        reordered or cut-off trail. ``gateway_key`` must be pinned out of band: a key
        fetched from the gateway being audited would vouch for itself.
        ``known_checkpoints`` are checkpoints kept from earlier audits: the gateway signs
        its *current* head on request, so a history rewritten before that request is
        only caught against a checkpoint the auditor saved before the rewrite.
        """
        checkpoint = await self.audit_checkpoint()
        entries = await self.audit_entries()
        return verify_audit_chain(
            entries, checkpoints=[*known_checkpoints, checkpoint], gateway_key=gateway_key
        )

    async def gateway_key(self) -> dict[str, Any]:
        """The gateway's public key as it presents it (compare the fingerprint out of band)."""
        return as_object(await self.transport.request("GET", "/v1/gateway/key"))

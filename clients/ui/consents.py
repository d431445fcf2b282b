"""Which of a subject's consents cover a send: plain logic over plain values (``now``
passed in). The gateway decides again, authoritatively; this is what lets the page say
"no consent covers this" before anything is sealed or sent.

Only records whose signature verifies with the recorder's directory key count
(``clients.local.consents.verified_record``; threat: a gateway inventing a consent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clients.local.consents import verified_record
from keys.protocol.directory import Directory


@dataclass(frozen=True)
class ConsentView:
    consent_id: str
    status: str  # active | withdrawn | expired | ... (the gateway's word)
    verified: bool
    record: dict[str, Any]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(str(p.get("from")), str(p.get("to"))) for p in self.record.get("pairs", [])]

    def covers(self, sender: str, to: str, category: str, purpose: str, now: int) -> bool:
        rec = self.record
        return (
            self.verified
            and self.status == "active"
            and (sender, to) in self.pairs
            and category in rec.get("categories", [])
            and purpose in rec.get("purposes", [])
            and int(rec.get("valid_from", 0)) <= now < int(rec.get("valid_until") or 0)
        )


def views(directory: Directory, consents: list[dict[str, Any]]) -> list[ConsentView]:
    out = []
    for consent in consents:
        record = verified_record(directory, consent)
        out.append(
            ConsentView(
                consent_id=str(consent.get("consent_id")),
                status=str(consent.get("status")),
                verified=record is not None,
                record=record or {},
            )
        )
    return out

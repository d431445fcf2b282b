"""Builders for the domain tests: one valid consent (``tests.support.factories``) at a
fixed ``NOW``, edited per test."""

from __future__ import annotations

import json
from typing import Any

from keys.crypto.consent_free_text import FreeText
from keys.domain.consent import Consent, ConsentPolicy
from keys.protocol.consent_record import ConsentRecord, parse_consent_record
from keys.protocol.vocabulary import load_vocabulary
from tests.support.factories import DAY, EVIDENCE, OTHER_SUBJECT, SUBJECT, consent_draft
from tests.support.paths import REPO

# Re-exported: the domain tests take every constant from here.
__all__ = ["DAY", "EVIDENCE", "OTHER_SUBJECT", "SUBJECT"]

NOW = 1_760_000_000  # 2025-10-09T08:53:20Z; a literal, as pure code takes time as a value
CONSENT_ID = "0b7e6a52-2f7c-4d7e-9a51-3c4a2f1d9e01"
ORAL_TEXT = FreeText(
    "Bertil, socialsekreterare SAV", "Muntligt samtycke vid möte på SAV, kl 10.15", bytes(32)
)
FREE_TEXT_HASH = "12" * 32
SCHEMAS = REPO / "schemas"

POLICY = ConsentPolicy(load_vocabulary())


def draft(**changes: Any) -> dict[str, Any]:
    """A valid, specific, written consent: SAV may ask LAS for a threat assessment and
    send the application; LAS may send the assessment back."""
    return consent_draft(
        now=NOW,
        consent_id=CONSENT_ID,
        recorder="sav/anna/1",
        between=[("sav", "las-storgoteborg"), ("las-storgoteborg", "sav")],
        categories=["application", "threat_assessment"],
        purposes=["initial_threat_assessment"],
        fields={"created": NOW - 3600, **changes},
    )


def oral(**changes: Any) -> dict[str, Any]:
    documented: dict[str, Any] = {
        "form": "oral",
        "evidence_hash": None,
        # The witness and note stay on the recording device; the record holds their hash.
        "free_text_hash": ORAL_TEXT.digest,
    }
    return draft(**{**documented, **changes})


def guardian(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "form": "written",
        "evidence_hash": EVIDENCE,
        "free_text_hash": None,
    }
    base.update(changes)
    return base


def record(**changes: Any) -> ConsentRecord:
    return parse_consent_record(draft(**changes), require_sig=False)


def consent(**changes: Any) -> Consent:
    return Consent(record(**changes))


def load_schema(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((SCHEMAS / name).read_text("utf-8"))
    return result

"""Shared builders for the domain tests: one valid consent, edited per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keys.crypto.consent_free_text import FreeText
from keys.domain.consent import Consent, ConsentPolicy
from keys.protocol.consent_record import ConsentRecord, parse_consent_record
from keys.protocol.vocabulary import load_vocabulary

NOW = 1_760_000_000  # 2025-10-09T08:53:20Z; a literal, as pure code takes time as a value
DAY = 86_400
SUBJECT = "ab" * 32
OTHER_SUBJECT = "cd" * 32
EVIDENCE = "ef" * 32
CONSENT_ID = "0b7e6a52-2f7c-4d7e-9a51-3c4a2f1d9e01"
ORAL_TEXT = FreeText(
    "Bertil, socialsekreterare SAV", "Muntligt samtycke vid möte på SAV, kl 10.15", bytes(32)
)
FREE_TEXT_HASH = "12" * 32
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

POLICY = ConsentPolicy(load_vocabulary())


def draft(**changes: Any) -> dict[str, Any]:
    """A valid, specific, written consent: SAV may ask LAS for a threat assessment and
    send the application; LAS may send the assessment back."""
    base: dict[str, Any] = {
        "v": 1,
        "consent_id": CONSENT_ID,
        "subject_ref": SUBJECT,
        "pairs": [
            {"from": "sav", "to": "las-storgoteborg"},
            {"from": "las-storgoteborg", "to": "sav"},
        ],
        "categories": ["application", "threat_assessment"],
        "purposes": ["initial_threat_assessment"],
        "valid_from": NOW - 3600,
        "valid_until": NOW + 90 * DAY,
        "form": "written",
        "evidence_hash": EVIDENCE,
        "free_text_hash": None,
        "obtained_by": "sav/anna",
        "obtained_at": NOW - 7200,
        "minor": False,
        "guardians": [],
        "covers_processing": True,
        "recorded_by": "sav/anna/1",
        "created": NOW - 3600,
    }
    base.update(changes)
    return base


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

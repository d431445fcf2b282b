"""The handover record for the receiving case file: JSON for the machine, HTML for people.

It says who sent what kind of information about which subject under which consent,
when, and what was verified: the sender's signature against the directory this
device verified, and the complete decryption (the envelope's final tag). It is written
into the handover folder *before* the receipt is signed, so the receipt never claims
more than the case file can show.
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path
from typing import Any

import schemas
from clients.sdk.results import OpenedMessage


@cache
def _vocabulary() -> dict[str, Any]:
    path = Path(schemas.__file__).parent / "vocabulary.json"
    value = json.loads(path.read_text(encoding="utf-8"))
    return value if isinstance(value, dict) else {}


def vocabulary_terms(group: str) -> frozenset[str]:
    terms = _vocabulary().get(group, {})
    return frozenset(terms) if isinstance(terms, dict) else frozenset()


def _term(group: str, code: str) -> dict[str, str]:
    labels = _vocabulary().get(group, {}).get(code, {})
    return {"code": code, "sv": str(labels.get("sv", code)), "en": str(labels.get("en", code))}


def metadata(
    opened: OpenedMessage, meta: dict[str, Any], documents: list[dict[str, Any]]
) -> dict[str, Any]:
    """The envelope's signed facts, plus what the sender's bridge put inside."""
    h = opened.header
    return {
        "v": 1,
        "message_id": opened.message_id,
        "sender": opened.sender,
        "sender_fingerprint": opened.sender_fingerprint,
        "recipient_unit": h.recipient_unit,
        "recipients": [str(k) for k in h.recipients],
        "opened_with": opened.opened_with,
        "consent_id": h.consent_id,
        "subject_ref": h.subject_ref,
        "personnummer": meta.get("personnummer"),
        "case_reference": meta.get("case_reference"),
        "category": h.category,
        "purpose": h.purpose,
        "created": h.created,
        "expires": h.expires,
        "in_reply_to": h.in_reply_to,
        "header_hash": opened.header_hash,
        "checkpoint": {"size": h.checkpoint_size, "head": h.checkpoint_head},
        "documents": documents,
    }


def record(meta: dict[str, Any], *, received_by: str, received_at: int) -> dict[str, Any]:
    sender = str(meta["sender"])
    return {
        "v": 1,
        "kind": "stafett.handover-record",
        "message_id": meta["message_id"],
        "received_by": received_by,
        "received_at": received_at,
        "sent_at": meta["created"],
        "sender": {
            "kid": sender,
            "unit": sender.split("/", 1)[0],
            "fingerprint": meta["sender_fingerprint"],
        },
        "category": _term("categories", meta["category"]),
        "purpose": _term("purposes", meta["purpose"]),
        "consent_id": meta["consent_id"],
        "subject": {"subject_ref": meta["subject_ref"], "personnummer": meta["personnummer"]},
        "case_reference": meta["case_reference"],
        "documents": meta["documents"],
        "verified": {
            "sender_signature": "verified with the sender's key from the verified directory",
            "sender_directory": meta["checkpoint"],
            "decryption": "complete; every chunk and the final tag authenticated",
            "header_hash": meta["header_hash"],
        },
    }


def render_html(rec: dict[str, Any]) -> str:
    """A plain, printable page (no scripts, no external resources)."""
    e = html.escape
    subject = rec["subject"]
    rows = [
        ("Meddelande-id / Message id", rec["message_id"]),
        ("Avsändare / Sender", f"{rec['sender']['kid']} ({rec['sender']['fingerprint']})"),
        ("Mottagen av / Received by", rec["received_by"]),
        ("Skickad / Sent (Unix)", str(rec["sent_at"])),
        ("Mottagen / Received (Unix)", str(rec["received_at"])),
        ("Kategori / Category", f"{rec['category']['sv']} / {rec['category']['en']}"),
        ("Ändamål / Purpose", f"{rec['purpose']['sv']} / {rec['purpose']['en']}"),
        ("Samtycke / Consent", rec["consent_id"]),
        ("Personnummer", subject["personnummer"] or "–"),
        ("Pseudonym / Subject reference", subject["subject_ref"]),
        ("Ärendereferens / Case reference", rec["case_reference"] or "–"),
        ("Huvudhash / Header hash", rec["verified"]["header_hash"]),
    ]
    docs = "".join(
        f"<li>{e(d['path'])} — {d['size']} byte, SHA-256 {e(d['sha256'])}</li>"
        for d in rec["documents"]
    )
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    return (
        '<!DOCTYPE html>\n<html lang="sv"><head><meta charset="utf-8">'
        "<title>Överlämning / Handover</title></head><body>"
        "<h1>Överlämning via Stafett / Handover through Stafett</h1>"
        f"<table>{table}</table><h2>Dokument / Documents</h2><ul>{docs}</ul>"
        "<p>Avsändarens signatur är verifierad mot den verifierade nyckelkatalogen och "
        "innehållet dekrypterades fullständigt. / The sender's signature verified against "
        "the verified key directory and the content decrypted completely.</p>"
        "</body></html>\n"
    )

"""Why a drop went to ``failed/``: stable codes and the text a person reads, in Swedish
and English (the reason file is read by case-system staff, not by developers).

Texts never hold the personnummer or the document's content: the reason file lies
beside the drop, but a copy of it may end up in a ticket or an e-mail.
"""

from __future__ import annotations

REASONS: dict[str, tuple[str, str]] = {
    "sidecar_not_json": (
        "Metadatafilen (sidecar) är inte giltig JSON.",
        "The metadata file (sidecar) is not valid JSON.",
    ),
    "sidecar_invalid": (
        "Metadatafilen följer inte schemat (schemas/bridge-sidecar.json).",
        "The metadata file does not follow the schema (schemas/bridge-sidecar.json).",
    ),
    "sidecar_too_large": (
        "Metadatafilen är för stor.",
        "The metadata file is too large.",
    ),
    "document_too_large": (
        "Ett dokument är större än vad bryggan tar emot.",
        "A document is larger than the bridge accepts.",
    ),
    "document_mismatch": (
        "Ett dokument stämmer inte med storleken eller kontrollsumman i metadatafilen.",
        "A document does not match the size or checksum in the metadata file.",
    ),
    "document_missing": (
        "Ett dokument som metadatafilen nämner kom aldrig fram i utkorgen.",
        "A document named in the metadata file never arrived in the outbox.",
    ),
    "unknown_term": (
        "Kategori eller ändamål finns inte i Stafetts ordlista.",
        "The category or purpose is not in Stafett's vocabulary.",
    ),
    "unknown_unit": (
        "Mottagande enhet eller handläggare finns inte (eller är spärrad) i katalogen.",
        "The recipient unit or officer is unknown (or revoked) in the directory.",
    ),
    "personnummer_invalid": (
        "Personnumret är ogiltigt (format, datum eller kontrollsiffra).",
        "The personnummer is invalid (format, date or check digit).",
    ),
    "no_subject_key": (
        "Bryggans nyckelfil saknar stadens personnyckel; personnummer kan inte användas.",
        "The bridge's keystore holds no city subject key; a personnummer cannot be used.",
    ),
    "unreadable": (
        "Bryggan kan inte läsa metadatafilen eller ett dokument (behörighet, trasig länk "
        "eller läsfel). Rätta filen och lämna försändelsen igen.",
        "The bridge cannot read the metadata file or a document (permissions, a broken "
        "link or a read error). Fix the file and drop it again.",
    ),
    "duplicate": (
        "Samma försändelse har redan skickats (samma metadata och dokument). "
        "Ange ett eget drop_id för att skicka den igen.",
        "The same drop was already sent (same metadata and documents). "
        "Give a drop_id of its own to send it again.",
    ),
    "gateway_refused": (
        "Stafett-servern vägrade försändelsen (se koden nedan; t.ex. samtycke saknas).",
        "The Stafett gateway refused the drop (see the code below; e.g. no consent).",
    ),
}


def reason_text(code: str, detail: str | None = None) -> str:
    """The reason file's text: Swedish first, then English, then the stable code."""
    sv, en = REASONS.get(code, REASONS["gateway_refused"])
    lines = [f"Orsak: {sv}", f"Reason: {en}", f"Kod / code: {code}"]
    if detail:
        lines.append(f"Detalj / detail: {detail}")
    return "\n".join(lines) + "\n"

"""Recording a consent on the device: what the CLI and the web inbox both do.

A written consent's signed form stays in the case file: only its BLAKE2b-256 checksum
is sent (``evidence_hash``), so the recorder can later prove which form it was. An oral
consent's witness and note stay on the device (``consents/<id>.json``); only their
salted hash is sent (``free_text_hash``, ``keys.crypto.consent_free_text.FreeText``).
The person's age comes from the personnummer: under 18 needs the guardians' consent,
whatever the officer ticked. Records read back from the gateway count only when the
recorder's signature verifies.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO, Any

from clients.local.records import read_record, record_path, remove_record, save_record
from keys.crypto.consent_free_text import FreeText
from keys.crypto.keypairs import KeyId
from keys.errors import KeysError
from keys.protocol.consent_record import verify_consent_record
from keys.protocol.directory import Directory

ADULT_AGE = 18
FREE_TEXT_DIR = "consents"


def evidence_hash(handle: IO[bytes]) -> str:
    """BLAKE2b-256 of a scanned form, streamed from the start (a scan can be large)."""
    digest = hashlib.blake2b(digest_size=32)
    handle.seek(0)
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def written(evidence: str) -> dict[str, Any]:
    """The form fields of a written consent (or a guardian's): the scan's hash only."""
    return {"evidence_hash": evidence, "free_text_hash": None}


def oral(witness: str, note: str) -> tuple[dict[str, Any], FreeText] | None:
    """The form fields of an oral consent and the free text that stays here; None when
    the witness or the note is missing. Checked on the device, not at the gateway: the
    gateway only ever sees the hash. Raises ``ConsentRecordInvalid`` when too long.
    """
    witness, note = witness.strip(), note.strip()
    if not witness or not note:
        return None
    text = FreeText.new(witness, note)
    return {"evidence_hash": None, "free_text_hash": text.digest}, text


def is_minor(age: int, said_minor: bool = False) -> bool:
    """Under 18 by the number, or said to be (threat: a minor recorded as an adult
    because a box was not ticked; the police require the guardians' consent)."""
    return said_minor or age < ADULT_AGE


def keep_free_text(home: Path, consent_id: str, text: FreeText) -> Path:
    """Save the oral consent's witness, note and salt locally (0600), before anything
    is sent: a record whose hash names a text that was never kept could not be proven."""
    return save_record(
        home,
        FREE_TEXT_DIR,
        consent_id,
        {"consent_id": consent_id, "free_text_hash": text.digest, **text.to_json()},
    )


def kept_free_text(home: Path, consent_id: str, free_text_hash: str) -> FreeText | None:
    """The text kept here for a record's ``free_text_hash``, if it is the one signed."""
    saved = read_record(home, FREE_TEXT_DIR, consent_id)
    if saved is None:
        return None
    try:
        text = FreeText.from_json(saved)
    except KeysError:
        return None
    return text if text.matches(free_text_hash) else None


def drop_free_text(home: Path, consent_id: str) -> None:
    """The gateway answered with an identical active consent: nothing new exists, so
    this attempt's local text names nothing and goes."""
    remove_record(home, FREE_TEXT_DIR, consent_id)


def free_text_path(home: Path, consent_id: str) -> Path:
    return record_path(home, FREE_TEXT_DIR, consent_id)


def verified_record(directory: Directory, consent: dict[str, Any]) -> dict[str, Any] | None:
    """The consent's record if its signature verifies with the recorder's directory key.

    Threat: a gateway inventing or editing a consent to make a send look covered; the
    record is signed by the recording officer's device, which the gateway cannot forge.
    """
    record = consent.get("record")
    if not isinstance(record, dict):
        return None
    try:
        verify_consent_record(
            record, directory.signing_key(KeyId.parse(str(record["recorded_by"])))
        )
    except (KeysError, KeyError):
        return None
    return record

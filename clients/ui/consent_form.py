"""How a consent was given, as the record carries it: written (evidence hash of the
scanned form) or oral (witness and note).

Kept apart on purpose: the oral form is changing so that the witness and the note stay
on the device and only a salted hash is sent (issue 8); that change belongs here and in
the CLI's helper, not in the page code.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import IO, Any

from aiohttp import web


def _blake2b(handle: IO[bytes]) -> str:
    digest = hashlib.blake2b(digest_size=32)
    handle.seek(0)
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


async def evidence_hash(item: Any) -> str | None:
    """BLAKE2b-256 of an uploaded file (as ``stafett consent record --evidence``);
    None when no file was chosen. The file itself goes nowhere."""
    if not isinstance(item, web.FileField) or not item.filename:
        return None
    return await asyncio.to_thread(_blake2b, item.file)


def form_fields(form: str, evidence: str | None, witness: str, note: str) -> dict[str, Any] | None:
    """The record's form fields, or None when what the form needs is missing."""
    if form == "written":
        if evidence is None:
            return None
        # The record names the scanned form by its hash only (no free text).
        return {"evidence_hash": evidence, "free_text_hash": None}
    return None

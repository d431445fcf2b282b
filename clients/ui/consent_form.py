"""How a consent was given, from the page's form: the scanned forms' hashes and an oral
consent's free text, through ``clients.local.consents`` (the same code as the CLI's
``stafett consent record``), so either tool can later prove what it recorded."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from clients.local import consents as local_consents


async def evidence_hash(item: Any) -> str | None:
    """BLAKE2b-256 of an uploaded file (as ``stafett consent record --evidence``);
    None when no file was chosen. The file itself goes nowhere."""
    if not isinstance(item, web.FileField) or not item.filename:
        return None
    return await asyncio.to_thread(local_consents.evidence_hash, item.file)


async def evidence_hashes(items: list[Any]) -> list[str]:
    """The hashes of every chosen file (one scanned form per guardian)."""
    found = [await evidence_hash(item) for item in items]
    return [h for h in found if h is not None]

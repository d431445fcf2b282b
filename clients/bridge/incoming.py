"""Incoming: the gateway's inbox → verified, decrypted handovers in ``inbox/`` → receipts.

Per message, in this order (a journal ``state/incoming/<id>.json`` makes it resumable):

1. fetch, verify and decrypt (``StafettClient.fetch``) into the spool;
2. build the handover folder under the hidden name ``inbox/.<id>.partial``:
   ``documents/``, ``metadata.json``, ``handover.json``, ``handover.html``; fsync
   every file and folder;
3. journal ``written`` with the header hash and the ``received_at`` the receipt will
   carry (so a re-signed receipt after a crash is byte-identical, which the gateway
   answers as the first time);
4. rename to ``inbox/<id>`` and fsync the inbox folder;
5. sign and post the receipt; journal ``acked``.

The receipt (which makes the gateway delete the content) is never signed before step 4
is durable: a crash before it leaves the message at the gateway, and a restart writes
it again from scratch (a leftover ``.partial`` without journal is removed). A crash
after step 3 renames what is there and receipts it: the journal, not the inbox folder,
says what was written, so a handover the case system already took away is not written
twice. Threat: a receipt for a handover the case file never got (the sender would
believe the matter handed over; the content is gone from the gateway).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from clients.bridge import handover, layout, quarantine
from clients.bridge.crash import crash_point
from clients.bridge.layout import Layout
from clients.bridge.outgoing import refusal_code
from clients.bridge.payload import META_NAME
from clients.bridge.sidecar import file_sha256
from clients.cli import bundle as cli_bundle
from clients.errors import GatewayUnavailable
from clients.sdk import StafettClient, sealing
from clients.sdk.results import OpenedMessage
from keys.protocol.problems import GatewayError
from keys.protocol.receipt import make_receipt
from keys.protocol.refusals import PolicyError

log = logging.getLogger("stafett.bridge.incoming")
_MAX_META = 64 << 10


def _is_message_id(value: object) -> bool:
    # Ids name folders here: only a canonical UUID (threat: "../" from a gateway).
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


class Incoming:
    def __init__(self, paths: Layout, client: StafettClient) -> None:
        self.paths = paths
        self.client = client
        self.errors = 0
        self.received = 0
        self.quarantined = 0

    async def run_once(self, now: float) -> None:
        after: str | None = None
        while True:
            page = await self.client.inbox(after)
            for item in page.get("messages", []):
                mid = item.get("message_id") if isinstance(item, dict) else None
                if _is_message_id(mid):
                    await self._isolated(str(mid), now)
            after = page.get("next")
            if not after:
                return

    async def _isolated(self, mid: str, now: float) -> None:
        """One message's unexpected failure does not stop the others (logged by kind)."""
        try:
            await self._one(mid, now)
        except GatewayUnavailable:
            raise
        except Exception as exc:
            self.errors += 1
            log.warning("message=%s not taken in: %s", mid, type(exc).__name__)

    async def _one(self, mid: str, now: float) -> None:
        journal_path = self.paths.incoming / f"{mid}.json"
        journal = layout.read_json(journal_path)
        partial = self.paths.inbox / f".{mid}.partial"
        quarantined = journal is not None and journal["state"] == "quarantined"
        if quarantined:
            assert journal is not None
            if now < journal["next_try"]:
                return  # not downloaded again every round
            journal = None  # try once more: perhaps our directory was behind
        if journal is None:
            if partial.exists():
                shutil.rmtree(partial)  # a crash before the journal: start again
            try:
                journal = await self._write(mid, partial, now)
            except Exception as exc:
                code = getattr(exc, "code", None)
                if isinstance(
                    exc, GatewayUnavailable | GatewayError | PolicyError
                ) or not isinstance(code, str):
                    raise  # the gateway's answer or trouble: the next round asks again
                # Not verifiable or not decryptable: nothing of it reaches the inbox and
                # no receipt is signed (see quarantine.py for why not even a rejection).
                shutil.rmtree(partial, ignore_errors=True)
                previous = layout.read_json(journal_path) if quarantined else None
                quarantine.put(self.paths, mid, code, previous, now=now)
                self.errors += 1
                self.quarantined += 1
                log.warning("message=%s quarantined code=%s", mid, code)
                return
            crash_point("recv:written")
            layout.write_json(journal_path, journal)
            crash_point("recv:journaled")
        if journal["state"] == "written":
            if partial.exists():
                os.rename(partial, self.paths.inbox / mid)
                layout.fsync_path(self.paths.inbox)
            crash_point("recv:renamed")
            quarantine.release(self.paths, mid)  # it verified after all
            receipt = make_receipt(
                message_id=mid,
                header_hash=bytes.fromhex(journal["header_hash"]),
                recipient=self.client.kid,
                status="accepted",
                reason=None,
                received_at=journal["received_at"],
                key=self.client.keystore.current().signing_key,
            )
            try:
                await self.client.transport.request(
                    "POST", f"/v1/messages/{mid}/receipt", json_body=receipt
                )
                state = "acked"
            except Exception as exc:
                code = refusal_code(exc)
                if code is None:
                    raise
                # E.g. recalled or expired meanwhile: the handover stays on disk (it was
                # verified), the sender's side shows the gateway's final state.
                state, journal["refused"] = "receipt_refused", code
                log.warning("message=%s receipt refused code=%s", mid, code)
            crash_point("recv:acked")
            # No folder fsync: if this rename is lost, the journal says "written" and the
            # byte-identical receipt is posted again, which the gateway answers the same.
            layout.write_json(journal_path, {**journal, "state": state}, sync_dir=False)
            self.received += 1
            log.info("message=%s handed over into the inbox", mid)

    async def _write(self, mid: str, partial: Path, now: float) -> dict[str, Any]:
        bundle = self.paths.incoming / f"{mid}.bundle"
        await asyncio.to_thread(sealing.remove, bundle)
        try:
            opened = await self.client.fetch(mid, bundle)
            crash_point("recv:fetched")
            await asyncio.to_thread(_build, partial, bundle, opened, str(self.client.kid), int(now))
        finally:
            await asyncio.to_thread(sealing.remove, bundle)
        return _journal(opened, int(now))


def _build(
    partial: Path, bundle: Path, opened: OpenedMessage, received_by: str, received_at: int
) -> None:
    """The handover folder under its temp name, every byte fsynced (blocking)."""
    partial.mkdir(mode=0o700)
    cli_bundle.unpack(bundle, partial / "documents")
    meta = _take_meta(partial / "documents")
    documents = _documents(partial / "documents", meta)
    facts = handover.metadata(opened, meta, documents)
    rec = handover.record(facts, received_by=received_by, received_at=received_at)
    # Plain writes: the one fsync_tree below makes every file and folder durable.
    layout.write_text(partial / "metadata.json", layout.json_text(facts))
    layout.write_text(partial / "handover.json", layout.json_text(rec))
    layout.write_text(partial / "handover.html", handover.render_html(rec))
    layout.fsync_tree(partial)


def _journal(opened: OpenedMessage, received_at: int) -> dict[str, Any]:
    return {
        "v": 1,
        "message_id": opened.message_id,
        "state": "written",
        "header_hash": opened.header_hash,
        "received_at": received_at,
    }


def _take_meta(documents: Path) -> dict[str, Any]:
    """The sending bridge's meta file, taken out of the documents (``{}`` if none)."""
    path = documents / cli_bundle.FILES_DIR / META_NAME
    try:
        with path.open("rb") as handle:
            value = json.loads(handle.read(_MAX_META))
    except (OSError, ValueError):
        return {}
    path.unlink()
    if not isinstance(value, dict) or value.get("kind") != "stafett.bridge-drop":
        return {}
    return {k: value.get(k) for k in ("personnummer", "case_reference", "documents")}


def _documents(documents: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file with size and SHA-256; ``as_declared`` compares with the sender's list."""
    declared = {
        d.get("name"): d.get("sha256") for d in meta.get("documents") or [] if isinstance(d, dict)
    }
    found = []
    for path in sorted(p for p in documents.rglob("*") if p.is_file()):
        digest = file_sha256(path)
        entry: dict[str, Any] = {
            "path": f"documents/{path.relative_to(documents).as_posix()}",
            "size": path.stat().st_size,
            "sha256": digest,
        }
        if path.name in declared and path.parent.name == cli_bundle.FILES_DIR:
            entry["as_declared"] = declared[path.name] == digest
        found.append(entry)
    return found

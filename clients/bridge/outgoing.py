"""Outgoing: drops in the outbox → sealed envelopes → the gateway → ``sent/``.

Per drop, a journal ``state/outgoing/<message_id>.json`` moves through

    sealed     the envelope is on disk (fsynced) beside the journal; it may or may not
               have reached the gateway (a resend of the same bytes is answered 200)
    filed      the gateway accepted it, and sidecar and documents are in
               ``sent/<drop>/`` with ``message.json``
    done       the verified receipt (or the final state) is in ``sent/<drop>/``

Every step is repeated safely after a crash: the journal is written before the upload,
and a resend is the *same envelope bytes* under the same id, which the gateway answers
with its first answer (``gateway.services.messages``, check 4) — never a second
message. A refusal moves the drop to ``failed/`` and deletes its journal, so a fixed
drop dropped again is tried again. One drop's failure never stops the others.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.bridge import layout, payload, sidecar
from clients.bridge.crash import crash_point
from clients.bridge.layout import Layout
from clients.bridge.reasons import reason_text
from clients.bridge.sidecar import Drop, DropFailed, DropWaits
from clients.errors import GatewayUnavailable
from clients.sdk import StafettClient, sealing
from keys.errors import DirectoryKeyRevoked, DirectoryUnknownKey, KeystoreError, SubjectIdInvalid
from keys.protocol.envelope import EnvelopeHeader

log = logging.getLogger("stafett.bridge.outgoing")
DAY = 86_400
_FINAL = {"expired", "withdrawn", "recalled"}
_RECEIPTED = {"handed_over", "rejected"}
# How often one sent message's state is asked for while its receipt is awaited: one
# request per pending message per round would load the gateway for nothing.
RECEIPT_POLL_S = 10.0


@dataclass(frozen=True)
class OutgoingSettings:
    max_bytes: int
    grace_s: float
    stale_s: float
    default_days: int
    categories: frozenset[str]
    purposes: frozenset[str]


def drop_tag(path: Path) -> str:
    """What the log names a drop by: file names may name a person, a hash does not."""
    return hashlib.sha256(path.name.encode()).hexdigest()[:8]


def refusal_code(exc: BaseException) -> str | None:
    """The stable code of a gateway refusal that no retry can change, else None."""
    code = getattr(exc, "code", None)
    status = getattr(exc, "status", 400)
    if isinstance(exc, GatewayUnavailable) or not isinstance(code, str):
        return None
    if not isinstance(status, int) or status >= 500 or status == 429:
        return None  # the gateway's trouble, not the drop's: try again later
    return code


def _unreadable(exc: OSError) -> DropFailed:
    """A sidecar or document the bridge cannot read (permissions, a symlink loop, an
    I/O error): retrying every round would only log the same error for ever, so it goes
    to ``failed/`` where a person sees it. Only errors from *reading the drop* come here;
    the bridge's own disk trouble (e.g. a full spool) is not the drop's fault."""
    name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return DropFailed("unreadable", name)


class Outgoing:
    def __init__(self, paths: Layout, client: StafettClient, settings: OutgoingSettings) -> None:
        self.paths = paths
        self.client = client
        self.settings = settings
        self.waiting = 0
        self.failed = 0
        self.pending_receipts = 0
        self.errors = 0
        self._polled: dict[str, float] = {}

    async def run_once(self, now: float) -> None:
        self.waiting = 0
        self.errors = 0
        for journal in self._journals():
            if journal["state"] in ("sealed", "accepted"):
                await self._isolated(self._resume(journal), journal["message_id"])
        for path in sidecar.sidecars(self.paths.outbox):
            await self._isolated(self._handle(path, now), drop_tag(path))
        await self._collect_receipts(now)

    async def _isolated(self, step: Awaitable[None], what: str) -> None:
        """One drop's unexpected failure (a file it cannot read, a bug) is logged and the
        next drop goes on: a bad drop never blocks the queue. Only an unreachable
        gateway ends the round (every other drop would fail the same way)."""
        try:
            await step
        except GatewayUnavailable:
            raise
        except Exception as exc:
            self.errors += 1
            code = getattr(exc, "code", None)
            log.warning("drop=%s not sent this round: %s", what, code or type(exc).__name__)

    def _journals(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.paths.outgoing.glob("*.json")):
            value = layout.read_json(path)
            if value is not None and "state" in value:
                found.append(value)
        return found

    def _journal_path(self, message_id: str) -> Path:
        return self.paths.outgoing / f"{message_id}.json"

    def _done_path(self, message_id: str) -> Path:
        # Finished journals move here, so a round reads only the open ones; they stay
        # to recognise the same drop dropped again (``duplicate``).
        return self.paths.outgoing / "done" / f"{message_id}.json"

    def _envelope_path(self, message_id: str) -> Path:
        return self.paths.outgoing / f"{message_id}.envelope"

    # --- one drop ---------------------------------------------------------------------
    async def _handle(self, path: Path, now: float) -> None:
        s = self.settings
        try:
            drop = sidecar.load(path, now=now, grace_s=s.grace_s, max_bytes=s.max_bytes)
        except DropWaits:
            self.waiting += 1
            return
        except DropFailed as failure:
            self._fail(path, [path.parent / n for n in failure.documents], failure)
            return
        except FileNotFoundError:
            return  # taken back by the case system since the listing
        except OSError as exc:
            self._fail(path, [], _unreadable(exc))
            return
        mid = sidecar.message_id(str(self.client.kid.device), drop)
        journal = layout.read_json(self._journal_path(mid)) or layout.read_json(
            self._done_path(mid)
        )
        if journal is not None:
            if journal["state"] in ("sealed", "accepted"):
                await self._resume(journal)
            else:
                self._fail(path, drop.document_paths(), DropFailed("duplicate", mid))
            return
        try:
            try:
                sidecar.check_complete(drop, now=now, stale_s=s.stale_s)
            except FileNotFoundError:
                raise DropWaits() from None  # a document renamed away meanwhile
            except OSError as exc:
                raise _unreadable(exc) from None
            journal = await self._seal(drop, mid, now)
        except DropWaits:
            self.waiting += 1
            return
        except DropFailed as failure:
            self._fail(path, drop.document_paths(), failure)
            return
        await self._resume(journal)

    def _check(self, drop: Drop) -> tuple[list[Any], str]:
        """Recipients and subject reference, or the reason the drop can never go."""
        fields = drop.fields
        if fields["category"] not in self.settings.categories:
            raise DropFailed("unknown_term", "category")
        if fields["purpose"] not in self.settings.purposes:
            raise DropFailed("unknown_term", "purpose")
        directory = self.client.directory_sync.directory
        try:
            recipients = directory.encryption_keys(
                fields["to"]["unit"], fields["to"].get("officers")
            )
        except (DirectoryUnknownKey, DirectoryKeyRevoked):
            raise DropFailed("unknown_unit") from None
        subject = fields["subject"]
        if "subject_ref" in subject:
            return recipients, str(subject["subject_ref"])
        try:
            return recipients, self.client.subject_ref(subject["personnummer"])
        except SubjectIdInvalid:
            raise DropFailed("personnummer_invalid") from None
        except KeystoreError:
            raise DropFailed("no_subject_key") from None

    async def _seal(self, drop: Drop, mid: str, now: float) -> dict[str, Any]:
        recipients, subject_ref = self._check(drop)
        before = [(p.stat().st_size, p.stat().st_mtime_ns) for p in drop.document_paths()]
        directory = self.client.directory_sync.directory
        fields = drop.fields
        created = int(now)
        header = EnvelopeHeader(
            message_id=mid,
            sender=self.client.kid,
            recipient_unit=fields["to"]["unit"],
            recipients=tuple(r.kid for r in recipients),
            consent_id=fields["consent_id"],
            subject_ref=subject_ref,
            category=fields["category"],
            purpose=fields["purpose"],
            created=created,
            expires=created + DAY * int(fields.get("expires_in_days", self.settings.default_days)),
            checkpoint_size=directory.size,
            checkpoint_head=directory.head.hex(),
            in_reply_to=None,
        )
        spool = self.paths.outgoing
        bundle = sealing.temp_path(spool, ".bundle")
        try:
            await asyncio.to_thread(payload.pack, drop, bundle, spool)
            sealed = await asyncio.to_thread(
                sealing.seal_to_file,
                header,
                bundle,
                recipients,
                self.client.keystore.current(),
                spool,
            )
        finally:
            sealing.remove(bundle)
        after = [(p.stat().st_size, p.stat().st_mtime_ns) for p in drop.document_paths()]
        if after != before:
            # Threat: a document overwritten between the hash check and sealing; the
            # envelope might not hold what the sidecar's hashes promise.
            sealing.remove(sealed.path)
            raise DropWaits()
        envelope = self._envelope_path(mid)
        layout.fsync_path(sealed.path)
        os.replace(sealed.path, envelope)
        crash_point("send:sealed")
        journal = {
            "v": 1,
            "message_id": mid,
            "state": "sealed",
            "sidecar": drop.sidecar_path.name,
            "documents": [d["name"] for d in drop.documents],
            "target": layout.free_name(self.paths.sent, drop.stem, mid[:8]).name,
            "header_hash": sealed.result.header_hash.hex(),
            "recipients": [str(r.kid) for r in recipients],
            "size": sealed.result.total_length,
            "digest": sealed.digest,
        }
        layout.write_json(self._journal_path(mid), journal)  # fsyncs the folder too
        crash_point("send:journaled")
        return journal

    async def _resume(self, journal: dict[str, Any]) -> None:
        mid = journal["message_id"]
        if journal["state"] == "sealed":
            envelope = self._envelope_path(mid)
            try:
                resp = await self.client.transport.upload(
                    "PUT", f"/v1/messages/{mid}", envelope, journal["size"], journal["digest"]
                )
            except Exception as exc:
                code = refusal_code(exc)
                if code is None:
                    raise
                self._fail_journaled(journal, DropFailed("gateway_refused", code))
                return
            crash_point("send:uploaded")
            # Not journaled as "accepted": a crash before "filed" re-uploads the same
            # bytes, which the gateway answers with its first answer (one fsync pair
            # less per drop, no weaker promise).
            journal = {**journal, "answer": resp.json() if resp.body else {}}
            journal["replayed"] = resp.status == 200
            log.info("sent message=%s status=%s", mid, resp.status)
        # "accepted": a journal written by an earlier version of the bridge.
        if journal["state"] in ("sealed", "accepted"):
            self._file(journal)

    def _file(self, journal: dict[str, Any]) -> None:
        """Into ``sent/<drop>/``: message.json, the documents, the sidecar; one fsync
        per folder touched, then the journal says ``filed``. The order within the group
        does not matter after a power cut: until ``filed`` is durable the journal says
        ``sealed`` and a restart repeats the whole step (every move tolerates a file
        already moved)."""
        mid = journal["message_id"]
        target = self.paths.sent / journal["target"]
        target.mkdir(exist_ok=True)
        answer = journal.get("answer") or {}
        layout.write_json(
            target / "message.json",
            {
                "v": 1,
                "message_id": mid,
                "header_hash": journal["header_hash"],
                "recipients": journal["recipients"],
                "accepted_at": answer.get("accepted_at"),
                "due": answer.get("due"),
                "expires": answer.get("expires"),
            },
            private=False,
            sync_dir=False,
        )
        outbox = self.paths.outbox
        changed = layout.move([outbox / n for n in journal["documents"]], target, sync=False)
        crash_point("send:filing")
        changed |= layout.move([outbox / journal["sidecar"]], target, sync=False)
        layout.fsync_dirs(changed | {target, self.paths.sent})
        crash_point("send:filed")
        layout.write_json(self._journal_path(mid), {**journal, "state": "filed"})
        sealing.remove(self._envelope_path(mid))

    # --- failures ---------------------------------------------------------------------
    def _fail(self, sidecar_path: Path, documents: list[Path], failure: DropFailed) -> None:
        stem = sidecar_path.name[: -len(sidecar.SUFFIX)]
        target = layout.free_name(self.paths.failed, stem, drop_tag(sidecar_path))
        target.mkdir()
        layout.move(documents, target)
        layout.write_text(
            target / "reason.txt", reason_text(failure.code, failure.detail), private=False
        )
        reason = {"code": failure.code, "detail": failure.detail}
        layout.write_text(target / "reason.json", json.dumps(reason) + "\n", private=False)
        layout.fsync_tree(target)  # the reason files and the moved documents
        layout.move([sidecar_path], target)  # last: until then the drop is in the outbox
        self.failed += 1
        log.warning("drop=%s failed code=%s", drop_tag(sidecar_path), failure.code)

    def _fail_journaled(self, journal: dict[str, Any], failure: DropFailed) -> None:
        outbox = self.paths.outbox
        self._fail(outbox / journal["sidecar"], [outbox / n for n in journal["documents"]], failure)
        mid = journal["message_id"]
        sealing.remove(self._envelope_path(mid))
        sealing.remove(self._journal_path(mid))

    # --- receipts ---------------------------------------------------------------------
    async def _collect_receipts(self, now: float) -> None:
        pending = [j for j in self._journals() if j["state"] == "filed"]
        self.pending_receipts = len(pending)
        for journal in pending:
            mid = journal["message_id"]
            if now - self._polled.get(mid, -RECEIPT_POLL_S) < RECEIPT_POLL_S:
                continue
            self._polled[mid] = now
            status = await self.client.status(mid)
            state = str(status.get("state"))
            target = self.paths.sent / journal["target"]
            if state in _RECEIPTED:
                verified = await self.client.receipt(
                    mid, header_hash=journal["header_hash"], recipients=journal["recipients"]
                )
                layout.write_json(
                    target / "receipt.json",
                    {
                        "v": 1,
                        "message_id": mid,
                        "verified": True,
                        "accepted": verified.accepted,
                        "reason": verified.reason,
                        "recipient": verified.recipient,
                        "recipient_fingerprint": verified.recipient_fingerprint,
                        "received_at": verified.received_at,
                        "receipt": verified.receipt.to_json(),
                    },
                    private=False,
                )
            elif state in _FINAL:
                layout.write_json(
                    target / "status.json",
                    {"v": 1, "message_id": mid, "state": state},
                    private=False,
                )
            else:
                continue
            self._done_path(mid).parent.mkdir(exist_ok=True, mode=0o700)
            layout.write_json(self._done_path(mid), {**journal, "state": "done", "final": state})
            sealing.remove(self._journal_path(mid))
            self._polled.pop(mid, None)
            self.pending_receipts -= 1
            log.info("message=%s final state=%s", mid, state)

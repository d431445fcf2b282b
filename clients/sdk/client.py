"""The async SDK: every gateway endpoint, with the cryptography done on this side.

``StafettClient`` signs each request with the device's current key, seals and opens
envelopes through ``keys.protocol.envelope``, and takes every public key it relies on from a
directory it verified itself (``clients.sdk.directory_sync``) — never from a gateway answer.
Refusals arrive as the registry's exception classes (``ConsentWithdrawn``,
``DeviceRevoked``, ...); see ``clients.sdk.transport``.

    async with StafettClient(url, keystore) as client:
        await client.sync_directory()
        result = await client.send(recipient_unit="sav", consent_id=cid, ...)

``clients.admin.StafettAdminClient`` signs with a security admin's key instead
(directory appends, audit trail). The keystore is changed in memory only
(``known_checkpoint`` after a sync): the caller saves it, since only the caller holds
the passphrase.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo

import aiohttp

from clients.errors import (
    EnvelopeExpired,
    EnvelopeReplayed,
    EnvelopeSwapped,
    GatewayUnavailable,
    NotOpened,
)
from clients.sdk import leftovers, open_checks, sealing
from clients.sdk.answers import as_list, as_object, field, seg
from clients.sdk.directory_sync import DirectorySync, SyncResult
from clients.sdk.events import stream_events
from clients.sdk.gateway_trust import GatewayTrust
from clients.sdk.results import OpenedMessage, PushEvent, SendResult, VerifiedReceipt
from clients.sdk.transport import Clock, Progress, Signer, Transport
from keys.crypto.keypairs import DeviceKeyPair, KeyId, VerifyKey
from keys.crypto.keystore import Keystore
from keys.crypto.subject import age_on, parse_personnummer, subject_reference
from keys.errors import DirectoryForked, DirectoryUnknownKey, KeystoreError
from keys.protocol.consent_record import sign_consent_record
from keys.protocol.directory import Directory
from keys.protocol.envelope import EnvelopeHeader, read_header, verify_envelope
from keys.protocol.receipt import make_receipt, verify_receipt

__all__ = ["StafettClient"]


class StafettClient:
    """One device talking to one gateway."""

    def __init__(
        self,
        base_url: str,
        keystore: Keystore,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = time.time,
        gateway_key: VerifyKey | GatewayTrust | None = None,
        spool_dir: Path | None = None,
        retries: int = 3,
        retry_backoff_s: float = 0.5,
        directory_sync: DirectorySync | None = None,
    ) -> None:
        """``directory_sync``: a sync the caller already ran (or will run) for this
        keystore, so the verified directory is not fetched and verified twice; later
        syncs continue from its head."""
        self.keystore = keystore
        self.clock = clock
        self.spool_dir = spool_dir
        self.retries = retries
        self.retry_backoff_s = retry_backoff_s
        if directory_sync is None:
            directory_sync = DirectorySync(keystore, gateway_key=gateway_key)
        elif directory_sync.keystore is not keystore:
            # The sync writes the verified head (and shreds destroyed keys) into its
            # keystore: it must be the one this client signs with and the caller saves.
            raise ValueError("directory_sync belongs to another keystore")
        self._sync = directory_sync
        self._synced = False
        self.transport = Transport(base_url, self._signer(), session=session, clock=clock)
        # hH and recipients of what this client sealed or opened: what a receipt must
        # name. Kept in memory only; a later process passes them explicitly.
        self._sent: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._opened: dict[str, str] = {}

    def _signer(self) -> Signer:
        pair = self.keystore.current()
        return Signer(str(pair.kid), pair.signing_key)

    @property
    def kid(self) -> KeyId:
        return KeyId.parse(self.transport.signer.kid)

    @property
    def unit(self) -> str:
        return self.kid.unit

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    def _now(self) -> int:
        return int(self.clock())

    # --- directory --------------------------------------------------------------------
    @property
    def directory_sync(self) -> DirectorySync:
        return self._sync

    async def sync_directory(self) -> SyncResult:
        """Fetch new entries, verify them, check the checkpoint and refuse a fork."""
        result = await self._sync.sync(self.transport)
        self._synced = True
        return result

    async def directory(self) -> Directory:
        """The verified directory, synced first (a revocation must be seen at once)."""
        return (await self.sync_directory()).directory

    def subject_ref(self, personnummer: str) -> str:
        """The subject's pseudonym, from a personnummer validated here first.

        Computed on this device with the city key from the keystore; the number itself
        never leaves the device (the gateway only ever sees the pseudonym).
        """
        return self.subject_ref_and_age(personnummer)[0]

    def subject_ref_and_age(self, personnummer: str) -> tuple[str, int]:
        """The pseudonym and the person's age today, from the number (validated here).

        The age decides whether a consent needs a guardian's (under 18); it is derived
        from the number, not asked, so that a minor cannot be recorded as an adult by
        a forgotten flag.
        """
        if self.keystore.subject_key is None:
            raise KeystoreError("this keystore holds no city subject key")
        # The Swedish date decides "born in the future" and the century of +/- numbers.
        today = datetime.fromtimestamp(self.clock(), ZoneInfo("Europe/Stockholm")).date()
        pnr = parse_personnummer(personnummer, today=today)
        return subject_reference(pnr, self.keystore.subject_key), age_on(pnr, today)

    # --- consents -------------------------------------------------------------------------
    async def record_consent(self, fields: Mapping[str, Any]) -> str:
        """Sign a consent record with this device's key and record it; returns its id.

        When an active consent already says the same (subject, pairs, categories,
        purposes) the gateway stores nothing and this returns *that* consent's id: a
        caller that compares it with the ``consent_id`` it passed sees the duplicate.
        An oral consent carries ``free_text_hash`` (keys.crypto.consent_free_text.FreeText), never
        the witness or the note: keeping the text is the caller's job.

        ``v``, ``consent_id`` (a new UUID), ``recorded_by`` (this key) and ``created``
        (now) are filled in unless given.
        """
        draft: dict[str, Any] = {
            "v": 1,
            "consent_id": str(uuid.uuid4()),
            "recorded_by": str(self.kid),
            "created": self._now(),
            **fields,
        }
        signed = sign_consent_record(draft, self._pair().signing_key)
        answer = await self.transport.request("POST", "/v1/consents", json_body=signed)
        return str(field(answer, "consent_id"))

    async def list_consents(self, subject_ref: str) -> list[dict[str, Any]]:
        answer = await self.transport.request(
            "GET", "/v1/consents", query={"subject_ref": subject_ref}
        )
        return as_list(answer, "consents")

    async def get_consent(self, consent_id: str) -> dict[str, Any]:
        return as_object(await self.transport.request("GET", f"/v1/consents/{seg(consent_id)}"))

    async def withdraw_consent(
        self, consent_id: str, reason: str, *, withdrawn_at: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason}
        if withdrawn_at is not None:
            body["withdrawn_at"] = withdrawn_at
        answer = await self.transport.request(
            "POST", f"/v1/consents/{seg(consent_id)}/withdraw", json_body=body
        )
        return as_object(answer)

    # --- sending ----------------------------------------------------------------------------
    async def send(
        self,
        *,
        recipient_unit: str,
        consent_id: str,
        subject_ref: str,
        category: str,
        purpose: str,
        body: sealing.Body,
        expires_in_s: int,
        devices: Sequence[str] | None = None,
        in_reply_to: str | None = None,
        progress: Progress | None = None,
        message_id: str | None = None,
    ) -> SendResult:
        """Seal ``body`` to the recipient unit's current keys and hand it to the gateway.

        Recipients come from the directory verified just now: every non-revoked device
        of the unit, or the named ``devices`` (a named device that is revoked or unknown
        is an error, never silently dropped). On a connection failure the same envelope
        is sent again under the same message id; the gateway answers a duplicate with
        the original answer, so a retry never creates a second message.
        """
        directory = await self.directory()
        recipients = directory.encryption_keys(recipient_unit, devices)
        now = self._now()
        header = EnvelopeHeader(
            message_id=message_id or str(uuid.uuid4()),
            sender=self.kid,
            recipient_unit=recipient_unit,
            recipients=tuple(r.kid for r in recipients),
            consent_id=consent_id,
            subject_ref=subject_ref,
            category=category,
            purpose=purpose,
            created=now,
            expires=now + expires_in_s,
            # The directory this client verified, bound into the signed header.
            checkpoint_size=directory.size,
            checkpoint_head=directory.head.hex(),
            in_reply_to=in_reply_to,
        )
        sealed = await asyncio.to_thread(
            sealing.seal_to_file, header, body, recipients, self._pair(), self.spool_dir
        )
        try:
            resp_status, answer, attempts = await self._put_envelope(
                header.message_id, sealed, progress
            )
        finally:
            sealing.remove(sealed.path)
        kids = tuple(str(r.kid) for r in recipients)
        self._sent[header.message_id] = (sealed.result.header_hash.hex(), kids)
        return SendResult(
            message_id=header.message_id,
            status=resp_status,
            replayed=resp_status == 200,
            header_hash=sealed.result.header_hash.hex(),
            recipients=kids,
            expires=_enforced_expiry(header.expires, answer),
            requested_expires=header.expires,
            size=sealed.result.total_length,
            attempts=attempts,
            answer=answer,
            accepted_at=_optional_int(answer.get("accepted_at")),
            due=_optional_int(answer.get("due")),
        )

    async def _put_envelope(
        self, message_id: str, sealed: sealing.SealedFile, progress: Progress | None
    ) -> tuple[int, dict[str, Any], int]:
        path = f"/v1/messages/{seg(message_id)}"
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self.transport.upload(
                    "PUT",
                    path,
                    sealed.path,
                    sealed.result.total_length,
                    sealed.digest,
                    progress=progress,
                )
            except GatewayUnavailable:
                # Idempotent by message id: the gateway may have stored the first try
                # and only the answer was lost; the same envelope gets the same answer.
                if attempt > self.retries:
                    raise
                await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
                continue
            answer = resp.json() if resp.body else {}
            return resp.status, as_object(answer), attempt

    # --- receiving ----------------------------------------------------------------------------
    async def inbox(self, after: str | None = None) -> dict[str, Any]:
        query = {"after": after} if after is not None else None
        return as_object(await self.transport.request("GET", "/v1/inbox", query=query))

    async def fetch(
        self,
        message_id: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        opened_before: str | None = None,
        reopen: bool = False,
    ) -> OpenedMessage:
        """Download, verify against the directory, decrypt into ``dest`` (atomically).

        ``dest`` only appears once the whole body decrypted and verified; on any
        failure nothing is left behind, neither the download nor a partial output
        (leftover temp files of an earlier, interrupted open of ``dest`` are removed
        first).

        Before anything is decrypted (``clients.sdk.open_checks``): the directory the
        sender verified (the header's checkpoint) must agree with this device's
        (``DirectoryForked`` otherwise), the signed expiry must not have passed
        (``EnvelopeExpired``), and a message this device opened before
        (``opened_before``: the ``hH`` recorded then, or what this client remembers) is
        refused with ``AlreadyOpened`` unless ``reopen`` is given, and then must be the
        very same envelope (``EnvelopeReplayed`` otherwise).
        """
        previous = opened_before or self._opened.get(message_id)
        open_checks.check_not_replayed(previous, reopen=reopen)
        await asyncio.to_thread(leftovers.remove_partial_outputs, dest)
        directory = await self.directory()
        envelope = sealing.temp_path(self.spool_dir, ".envelope")
        try:
            with envelope.open("wb") as out:
                await self.transport.download(
                    f"/v1/messages/{seg(message_id)}/envelope", out, progress=progress
                )
            with envelope.open("rb") as src:
                claimed = await asyncio.to_thread(read_header, src)
            # Threat: a gateway serving another (genuine) envelope for the id asked for;
            # the officer would file and acknowledge the wrong case.
            self._check_envelope(claimed, message_id)

            def resolve(kid: KeyId) -> VerifyKey:
                return directory.signing_key(kid)

            try:
                await self._judge(claimed, directory, previous)
            except (DirectoryForked, EnvelopeExpired, EnvelopeReplayed):
                # Judged on a header not verified yet: verify the signature first, so
                # that a header tampered with is reported as such, not as a fork or a
                # replay (nothing has been decrypted either way).
                with envelope.open("rb") as src:
                    await asyncio.to_thread(verify_envelope, src, resolve)
                raise
            opened = await asyncio.to_thread(
                sealing.open_to, envelope, self._keypairs(), resolve, dest
            )
        finally:
            sealing.remove(envelope)
        if opened.header != claimed:  # the file changed between the reads
            sealing.remove(dest)
            raise EnvelopeSwapped()
        header_hash = opened.header_hash.hex()
        self._opened[message_id] = header_hash
        return OpenedMessage(
            message_id=message_id,
            path=dest,
            content_length=opened.content_length,
            sender=str(opened.header.sender),
            sender_fingerprint=opened.sender_fingerprint,
            header_hash=header_hash,
            opened_with=str(opened.opened_with),
            header=opened.header,
            reopened=previous is not None,
        )

    async def _judge(
        self, header: EnvelopeHeader, directory: Directory, previous: str | None
    ) -> None:
        # Fork first: it is the graver finding, also on an old envelope.
        await open_checks.check_checkpoint(header, directory, self.directory)
        open_checks.check_not_expired(header, self._now())
        open_checks.check_same_envelope(previous, header.hash().hex())

    def _check_envelope(self, header: EnvelopeHeader, message_id: str) -> None:
        if header.message_id != message_id or header.recipient_unit != self.unit:
            raise EnvelopeSwapped()

    async def ack(
        self,
        message_id: str,
        status: str = "accepted",
        reason: str | None = None,
        *,
        header_hash: str | None = None,
    ) -> dict[str, Any]:
        """Sign a handover receipt; the gateway deletes the content when it stores it."""
        hh = header_hash or self._opened.get(message_id)
        if hh is None:
            raise NotOpened()
        receipt = make_receipt(
            message_id=message_id,
            header_hash=bytes.fromhex(hh),
            recipient=self.kid,
            status=status,
            reason=reason,
            received_at=self._now(),
            key=self._pair().signing_key,
        )
        answer = await self.transport.request(
            "POST", f"/v1/messages/{seg(message_id)}/receipt", json_body=receipt
        )
        return as_object(answer or {})

    # --- the sender's view ------------------------------------------------------------------
    async def receipt(
        self,
        message_id: str,
        *,
        header_hash: str | None = None,
        recipients: Sequence[str] | None = None,
        as_of: int | None = None,
    ) -> VerifiedReceipt:
        """The recipient's signed receipt, verified with the recipient's directory key.

        The expected ``hH`` and recipients are what this client sealed (kept in memory
        by :meth:`send`), or given explicitly; never taken from the gateway's word.
        A receipt stays proof after its signer's key is revoked or rotated away: it is
        then verified at the directory position ``as_of`` (what
        ``VerifiedReceipt.directory_size`` said when it was first verified), or the
        position the gateway recorded; ``key_since`` says what happened to the key.
        """
        known = self._sent.get(message_id)
        expected_hh = header_hash or (known[0] if known else None)
        if expected_hh is None:
            raise NotOpened("this client did not send that message: pass header_hash")
        expected_kids = recipients if recipients is not None else (known[1] if known else None)
        answer = as_object(
            await self.transport.request("GET", f"/v1/messages/{seg(message_id)}/receipt")
        )
        raw = answer.get("receipt", answer)
        directory = await self.directory()
        recipient = KeyId.parse(str(as_object(raw).get("recipient", "")))
        since: str | None = None
        try:
            key = directory.signing_key(recipient)
        except DirectoryUnknownKey:
            # Revoked or rotated away since: verify against the directory as it stood
            # when the receipt was stored (``as_of`` this device recorded when it first
            # verified it, else the position the gateway verified it at). A key that was
            # already revoked at that position is refused all the same.
            if as_of is None:
                as_of = _receipt_position(await self.status(message_id))
            if as_of is None:
                raise
            key = directory.signing_key_at(recipient, as_of)
            record = directory.devices[str(recipient.device)]
            since = (
                "revoked" if record.versions[recipient.version].status == "revoked" else "destroyed"
            )
        parsed = verify_receipt(
            raw,
            key,
            expected_message_id=message_id,
            expected_header_hash=expected_hh,
            expected_recipients=expected_kids,
        )
        position = directory.size if since is None else as_of
        return VerifiedReceipt(parsed, key.fingerprint(), since, position)

    async def recall(self, message_id: str) -> dict[str, Any]:
        answer = await self.transport.request("POST", f"/v1/messages/{seg(message_id)}/recall")
        return as_object(answer or {})

    async def outbox(self, after: str | None = None) -> dict[str, Any]:
        query = {"after": after} if after is not None else None
        return as_object(await self.transport.request("GET", "/v1/outbox", query=query))

    async def status(self, message_id: str) -> dict[str, Any]:
        return as_object(await self.transport.request("GET", f"/v1/messages/{seg(message_id)}"))

    def events(
        self, after: int = 0, *, reconnect_delay_s: float = 1.0, max_reconnects: int | None = None
    ) -> AsyncGenerator[PushEvent, None]:
        """This device's events with seq > ``after``; resumes by itself after a drop."""
        return stream_events(
            self.transport,
            after,
            reconnect_delay_s=reconnect_delay_s,
            max_reconnects=max_reconnects,
        )

    # --- keys -------------------------------------------------------------------------------
    def _pair(self) -> DeviceKeyPair:
        return self.keystore.current()

    def _keypairs(self) -> list[DeviceKeyPair]:
        # Every version still held: a message sealed before a rotation opens with the old one.
        return [self.keystore.keypairs[v] for v in sorted(self.keystore.keypairs, reverse=True)]


def _enforced_expiry(requested: int, answer: dict[str, Any]) -> int:
    """When the gateway stops handing the message out: its answer, never later than
    what this device signed. The gateway caps the expiry at the consent's end; a later
    value in the answer would be a gateway claiming to keep content longer than the
    sender allowed, so the signed one stands then."""
    enforced = _optional_int(answer.get("expires"))
    return requested if enforced is None else min(requested, enforced)


def _receipt_position(status: Mapping[str, Any]) -> int | None:
    """The directory size at which the gateway verified the message's receipt."""
    receipt = status.get("receipt")
    return _optional_int(receipt.get("directory_size")) if isinstance(receipt, dict) else None


def _optional_int(value: Any) -> int | None:
    """An integer field of an answer, or None when absent or of another type (bool too)."""
    return value if type(value) is int else None

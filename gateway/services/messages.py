"""Sending: a streamed envelope is verified, decided on and stored — or nothing is stored.

Checks, in order, each with its own code (deny by default: only the end accepts):

1. framing and header (``envelope_malformed`` / ``envelope_header_invalid`` …): the
   header must be valid against ``schemas/envelope-header.json`` (``keys.protocol.envelope_header``
   enforces the same rules) and name a category and purpose from the vocabulary;
2. the path id is the header's ``message_id`` (``message_id_mismatch``);
3. the caller's kid is the header's ``sender`` (``sender_mismatch``): a device sends as
   itself only;
4. a previous send with this id: the byte-identical upload gets the original answer
   (200, even after handover); anything else ``message_id_conflict`` (409);
5. the sender's signature against the verified directory (``sender_unknown``,
   ``envelope_signature_invalid``): nothing the gateway stores was altered in transit;
6. the recipient unit exists (``recipient_unit_unknown``); every recipient kid is an
   enrolled, unrevoked key of a device of that unit (``recipient_unknown``) at or above
   the device's minimum encryption version (``recipient_key_too_old``); checked again,
   with the sender's key (``device_revoked``, ``key_retired``), inside the transaction
   that accepts the message, against the directory as committed then;
7. the consent decision (``keys.domain.consent.decide``) with the caller's unit as
   sender unit, under a share lock on the consent row so a concurrent withdrawal either
   sees this message or is seen by it;
8. the expiry (``keys.domain.lifecycle.effective_expiry``, capped by settings), then
   capped at the consent's ``valid_until`` (``cap_at_consent_end``): the answer's
   ``expires`` is the one the gateway enforces, which may be earlier than the signed
   header's (the header is not changed; the sender is told).

Checks 1–3 run while the body streams in (one pass, ``_read_header``): a wrong header
is refused as soon as it has arrived, a broken framing at the frame that breaks it.

An accepted message is stamped with its ``due`` time from the deadline policy
(``gateway.services.deadlines``), keyed by the unit kinds in the verified directory.

Refusals are audited by the problem middleware as ``request_refused`` {code, kid,
route}: a second ``message_refused`` entry would only double every refusal. Refusals
of an authentic envelope (after the signature verified: recipients, consent) are also
counted, de-identified, for the follow-up figures (``send_refusals``): per month, unit
pair, category, purpose and code — no ids, no pseudonym, no time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from gateway.blobstore import AnyUpload, Blobs
from gateway.caller import Caller, require_device
from gateway.db import audit_trail as audit
from gateway.db import handover_store, report_store
from gateway.db.engine import SessionMaker
from gateway.db.models import MessageRow
from gateway.db.units import Tx
from gateway.services.consents import consent_of
from gateway.services.deadlines import deadline_policy, due_for
from gateway.services.directory import DirectoryService
from gateway.services.events import emit_in
from gateway.services.message_content import (
    destroy_content,
    devices_of,
    end_pending,
    message_facts,
    withdraw_pending_under_consent,
)
from gateway.services.request_unit import write_unit
from gateway.settings import Settings
from keys.domain.consent import decide
from keys.domain.deadlines import DeadlinePolicy
from keys.domain.lifecycle import MessageState, cap_at_consent_end, effective_expiry
from keys.domain.report_period import month_of
from keys.errors import EnvelopeHeaderInvalid, StafettError
from keys.protocol.directory import Directory
from keys.protocol.envelope import EnvelopeHeader, VerifiedEnvelope
from keys.protocol.envelope_verify_stream import EnvelopeVerifier
from keys.protocol.problems import (
    MessageIdConflict,
    MessageIdMismatch,
    RecipientKeyTooOld,
    RecipientUnitUnknown,
    RecipientUnknown,
    SenderMismatch,
    code_of,
)
from keys.protocol.refusals import ConsentRefused
from keys.protocol.vocabulary import Vocabulary, load_vocabulary

log = logging.getLogger(__name__)

# Refusals counted for the follow-up figures: decisions about an authentic envelope.
# Malformed or unauthenticated uploads are not handovers anybody attempted.
COUNTED_REFUSALS = (ConsentRefused, RecipientUnitUnknown, RecipientUnknown, RecipientKeyTooOld)

__all__ = [
    "SendResult",
    "destroy_content",
    "end_pending",
    "send_message",
    "withdraw_pending_under_consent",
]


@dataclass(frozen=True)
class SendResult:
    status: int  # 201 accepted now, 200 the same envelope accepted before
    body: dict[str, Any]


def accepted_answer(row: MessageRow) -> dict[str, Any]:
    """The answer to an accepted send, rebuilt from fields that never change, so a
    retry gets exactly the original answer whatever happened to the message since."""
    return {
        "message_id": row.id,
        "state": str(MessageState.ACCEPTED),
        "consent_id": row.consent_id,
        "consent_version": row.consent_version,
        "header_hash": row.header_hash,
        "size": row.size,
        "accepted_at": row.accepted_at,
        "expires": row.expires,
        "due": row.due,
    }


async def send_message(
    sessionmaker: SessionMaker,
    caller: Caller,
    message_id: str,
    chunks: AsyncIterator[bytes],
    *,
    directory: Directory,
    settings: Settings,
    blobs: Blobs,
    now: int,
    vocabulary: Vocabulary | None = None,
    deadlines: DeadlinePolicy | None = None,
    clock: Callable[[], int] | None = None,
    directories: DirectoryService | None = None,
) -> SendResult:
    """Receive, check and store one envelope (module docstring for the order).

    ``clock``, when given, is read once the whole body has arrived and replaces ``now``:
    the consent and the expiry are decided at the end of the upload, not at its start.
    Threat: an upload begun while the consent was valid and trickled in past its end
    (or past the message's own expiry) would otherwise be accepted, stamped as if the
    decision had been taken back then.

    ``directories``, when given, is the instance's directory service: the transaction
    that accepts the message checks that the directory it decides with is the one
    committed (``gateway.services.request_unit``), and if it moved the sender's key and
    every recipient key are checked again against the new one. Threat: a device revoked
    (or a key retired) while a long upload streamed — authorised at the start, it would
    still be sent or receive the message; it is refused with the code a send started
    after the revocation gets.
    """
    require_device(caller)
    vocabulary = vocabulary or load_vocabulary()
    # One pass: every chunk is checked (framing, header, hB) on its way to the blob
    # store, so nothing reads the upload again before the decision.
    verifier = EnvelopeVerifier(max_size=settings.max_body_bytes)
    checked = _read_header(chunks, verifier, caller, message_id, vocabulary)
    upload = await blobs.receive(message_id, checked)  # the temp file is gone if this raises
    if clock is not None:
        now = clock()
    try:
        result, accepted = await _decide(
            sessionmaker,
            caller,
            message_id,
            upload,
            verifier,
            blobs=blobs,
            directory=directory,
            settings=settings,
            deadlines=deadlines or deadline_policy(settings),
            now=now,
            directories=directories,
        )
    except BaseException:
        blobs.discard(upload)  # refused: nothing stored, not even the bytes
        raise
    if accepted:
        # After the commit. If this rename never happens (a crash) the row points at
        # the temp file, which the fetch (or start-up, or the sweeper) publishes.
        blobs.publish(upload)
    else:
        blobs.discard(upload)
    return result


async def _read_header(
    chunks: AsyncIterator[bytes],
    verifier: EnvelopeVerifier,
    caller: Caller,
    message_id: str,
    vocabulary: Vocabulary,
) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through ``verifier`` to the blob store, checking the header (path
    id, sender, vocabulary) as soon as it has arrived; at the end, refuse a truncated
    envelope before the blob store fsyncs it.

    A refusal here is taken on bytes whose digest is not known yet (``verified_body``
    checks it at the end). That only ever refuses — nothing is accepted before the
    whole body and its digest are in — and it stops a wrong upload early instead of
    spooling up to ``max_body_bytes`` of it first. Threat: a client (or a relay) that
    streams a large body under a header the gateway will refuse, to fill its disk.
    """
    checked = False
    async for chunk in chunks:
        verifier.feed(chunk)  # hashing a 64 KiB chunk inline: tens of microseconds
        if not checked and verifier.prefix is not None:
            _check_header(verifier.prefix.header, caller, message_id, vocabulary)
            checked = True
        yield chunk
    verifier.finish()  # refuses a stream whose prefix never completed
    if not checked:  # so never reached; deny by default all the same
        raise RuntimeError("an envelope header was never checked")


def _check_header(
    header: EnvelopeHeader, caller: Caller, message_id: str, vocabulary: Vocabulary
) -> None:
    if header.message_id != message_id:
        raise MessageIdMismatch()
    if header.sender != caller.kid:
        raise SenderMismatch()
    _check_vocabulary(header, vocabulary)


def _verify(verifier: EnvelopeVerifier, directory: Directory) -> VerifiedEnvelope:
    # The framing and hB were checked as the body streamed; left is one Ed25519
    # verification (tens of microseconds), fine on the event loop.
    return verifier.verify(directory.signing_key)


def _check_vocabulary(header: EnvelopeHeader, vocabulary: Vocabulary) -> None:
    # Free text here would put case content into metadata the gateway keeps.
    if header.category not in vocabulary.categories:
        raise EnvelopeHeaderInvalid("header field 'category' is not in the vocabulary")
    if header.purpose not in vocabulary.purposes:
        raise EnvelopeHeaderInvalid("header field 'purpose' is not in the vocabulary")


def _check_recipients(header: EnvelopeHeader, directory: Directory) -> None:
    if header.recipient_unit not in directory.units:
        raise RecipientUnitUnknown()
    # Its own code (RecipientUnitNoDevice), not "unknown recipient": nobody in the unit
    # could read the message, whatever the sender sealed it to.
    directory.require_active_device(header.recipient_unit)
    for kid in header.recipients:
        record = directory.devices.get(str(kid.device))
        # Threat: content sealed to a key nobody legitimate holds (a revoked laptop,
        # an invented kid) would leave the gateway as readable by the wrong person.
        if (
            record is None
            or record.device.unit != header.recipient_unit
            or record.revoked
            or kid.version not in record.versions
            or record.versions[kid.version].status == "revoked"
        ):
            raise RecipientUnknown()
        if not directory.is_acceptable_recipient(kid):
            raise RecipientKeyTooOld()


def _replay(existing: MessageRow, upload: AnyUpload) -> SendResult:
    if existing.envelope_hash != upload.upload_hash:
        raise MessageIdConflict()
    return SendResult(200, accepted_answer(existing))


async def _previous(sessionmaker: SessionMaker, message_id: str) -> MessageRow | None:
    # On the store's reader (a snapshot that never waits for the writer).
    return await sessionmaker.units.read(lambda tx: handover_store.message(tx.conn, message_id))


async def _decide(
    sessionmaker: SessionMaker,
    caller: Caller,
    message_id: str,
    upload: AnyUpload,
    verifier: EnvelopeVerifier,
    *,
    blobs: Blobs,
    directory: Directory,
    settings: Settings,
    deadlines: DeadlinePolicy,
    now: int,
    directories: DirectoryService | None,
) -> tuple[SendResult, bool]:
    # The header and the framing were checked while the body streamed (_read_header).
    # Outside any transaction, so nothing here ever holds a database lock.
    try:
        verified = _verify(verifier, directory)
    except StafettError:
        # A previous send with this id answers first (the original answer, or a
        # conflict), as before any check of the envelope. Looked up only here: a valid
        # envelope's unit of work finds a previous send itself, one read fewer.
        existing = await _previous(sessionmaker, message_id)
        if existing is not None:
            return _replay(existing, upload), False
        raise
    header = verified.header
    try:
        return await _store(
            sessionmaker,
            caller,
            message_id,
            upload,
            verified,
            blobs=blobs,
            directory=directory,
            settings=settings,
            deadlines=deadlines,
            now=now,
            directories=directories,
        )
    except COUNTED_REFUSALS as exc:
        await _count_refusal(sessionmaker, caller, header, directory, code_of(exc), now=now)
        raise


async def _count_refusal(
    sessionmaker: SessionMaker,
    caller: Caller,
    header: EnvelopeHeader,
    directory: Directory,
    code: str,
    *,
    now: int,
) -> None:
    """Count one refused send in its own transaction (the decision's rolled back)."""
    # A unit name the directory does not know is the sender's free text: not exported.
    recipient = (
        header.recipient_unit
        if header.recipient_unit in directory.units
        else report_store.UNKNOWN_UNIT
    )
    try:
        async with sessionmaker.begin() as session:
            await report_store.count_refusal(
                session,
                month=month_of(now),
                sender_unit=caller.unit,
                recipient_unit=recipient,
                category=header.category,
                purpose=header.purpose,
                code=code,
            )
    except Exception:
        # The refusal itself stands (and is audited); only the statistic is lost.
        log.exception("could not count a refused send (%s)", code)


async def _store(
    sessionmaker: SessionMaker,
    caller: Caller,
    message_id: str,
    upload: AnyUpload,
    verified: VerifiedEnvelope,
    *,
    blobs: Blobs,
    directory: Directory,
    settings: Settings,
    deadlines: DeadlinePolicy,
    now: int,
    directories: DirectoryService | None,
) -> tuple[SendResult, bool]:
    header = verified.header
    expires = effective_expiry(
        header.created,
        header.expires,
        now=now,
        max_ttl_s=settings.max_ttl_s,
        clock_skew_s=settings.clock_skew_s,
    )
    recipients = [str(k) for k in header.recipients]

    def accept(tx: Tx, current: Directory) -> tuple[SendResult, bool]:
        existing = handover_store.message(tx.conn, message_id)
        if existing is not None:
            return _replay(existing, upload), False
        # Against the directory as committed now (write_unit checked the sender's key
        # against it), not the one of when the upload began.
        _check_recipients(header, current)
        row_of_consent = handover_store.consent(tx.conn, header.consent_id, share=True)
        consent = None if row_of_consent is None else consent_of(row_of_consent)
        decision = decide(
            consent,
            sender_unit=caller.unit,
            recipient_unit=header.recipient_unit,
            subject_ref=header.subject_ref,
            category=header.category,
            purpose=header.purpose,
            now=now,
        )
        decision.raise_for_refusal()
        if decision.consent_version is None or consent is None:  # accepted ⇒ stamped
            raise RuntimeError("an accepted decision carries the consent version")
        # Never held past the consent's end (decide refused an open-ended one).
        capped = cap_at_consent_end(expires, consent.record.valid_until or now)
        row = MessageRow(
            id=message_id,
            sender_kid=str(caller.kid),
            sender_unit=caller.unit,
            recipient_unit=header.recipient_unit,
            consent_id=header.consent_id,
            consent_version=decision.consent_version,
            subject_ref=header.subject_ref,
            category=header.category,
            purpose=header.purpose,
            header_hash=verified.header_hash.hex(),
            envelope_hash=upload.upload_hash,
            size=upload.size,
            created=header.created,
            expires=capped,
            due=due_for(
                deadlines,
                current,
                sender_unit=caller.unit,
                recipient_unit=header.recipient_unit,
                purpose=header.purpose,
                accepted_at=now,
            ),
            state=str(MessageState.ACCEPTED),
            state_changed_at=now,
            accepted_at=now,
            delivered_at=None,
            handed_over_at=None,
            blob_key=upload.key,
            escalated_at=None,
            end_reason=None,
            exposed_at=None,
        )
        handover_store.insert_message(tx.conn, row, recipients)
        blobs.claim_in(tx, upload)  # the row owns the blob from this commit on
        audit.append(
            tx.conn,
            "message_accepted",
            now=now,
            **message_facts(row),
            recipients=recipients,
            size=row.size,
            expires=capped,
            due=row.due,
        )
        data = {
            "state": row.state,
            "sender": row.sender_kid,
            "category": row.category,
            "purpose": row.purpose,
            "expires": capped,
            "due": row.due,
        }
        for device in devices_of(recipients):
            emit_in(tx, device=device, kind="inbox.new", message_id=message_id, data=data, now=now)
        return SendResult(201, accepted_answer(row)), True

    try:
        return await write_unit(sessionmaker, caller, directory, accept, directories=directories)
    except IntegrityError:
        # A concurrent send of the same id committed first: answer as a retry would.
        existing = await _previous(sessionmaker, message_id)
        if existing is None:
            raise
        return _replay(existing, upload), False

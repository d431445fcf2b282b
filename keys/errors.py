"""The one error hierarchy: :class:`StafettError`, its registry, and the key errors.

Every refusal in Stafett is a subclass of :class:`StafettError` with three class
attributes: a stable ``code`` (snake_case, on the wire as the problem's ``code``), the
HTTP ``status`` the gateway answers with, and an English ``title``. A class that names
its own ``code`` registers itself in :data:`REGISTRY` when it is defined; nothing keeps a
list by hand. The gateway's middleware renders any of them as RFC 9457 problem details
(``keys.protocol.problems``); the SDK maps a problem's code back to the same class;
the CLIs and the UI take the Swedish and English titles from ``keys.protocol.titles``.

This module sits beneath the crypto layer (docs/architecture.md): crypto raises these
classes, so the registry root may import nothing of the project.

Messages never include key material, plaintext or subject references: they say what
was wrong, not with what.
"""

from __future__ import annotations

from typing import ClassVar

REGISTRY: dict[str, type[StafettError]] = {}
"""Every stable code → its class, filled by :meth:`StafettError.__init_subclass__`."""


class StafettError(Exception):
    """Base of every refusal with a stable code (gateway, protocol, crypto, domain)."""

    code: ClassVar[str] = "stafett_error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request refused"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            return  # shares its parent's code (a narrower Python type, same refusal)
        if "title" not in cls.__dict__:
            # The first line of the docstring is the title unless the class names one.
            doc = (cls.__doc__ or "").strip().splitlines()
            cls.title = doc[0].rstrip(".") if doc else "Request refused"
        prior = REGISTRY.get(cls.code)
        if prior is not None and prior.__qualname__ != cls.__qualname__:
            # Two classes for one code would make the SDK's mapping ambiguous.
            raise RuntimeError(f"error code {cls.code} is defined twice")
        REGISTRY[cls.code] = cls


class KeysError(StafettError):
    """Base class: something about keys, envelopes or the directory was refused."""

    code = "crypto_error"
    status = 400

    def __init_subclass__(cls, **kwargs: object) -> None:
        # A key error that names its own code is a 400 unless it names its status too:
        # the status belongs to the code, it is not inherited from a broader refusal.
        if "code" in cls.__dict__ and "status" not in cls.__dict__:
            cls.status = 400
        super().__init_subclass__(**kwargs)

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)


# --- key material -------------------------------------------------------------------
class KeyInvalid(KeysError):
    """The key is malformed: wrong size, a low-order or non-canonical point."""

    code = "key_invalid"


class KeyIdInvalid(KeysError):
    """The key id is not of the form unit/device/version."""

    code = "key_id_invalid"
    status = 401


# --- keystore -------------------------------------------------------------------------
class KeystoreError(KeysError):
    """The keystore could not be used."""

    code = "keystore_error"
    status = 500


class KeystoreWrongPassphrase(KeystoreError):
    """The passphrase does not open this keystore."""

    code = "keystore_wrong_passphrase"
    status = 500


class KeystoreCorrupt(KeystoreError):
    """The keystore file is damaged or not a Stafett keystore."""

    code = "keystore_corrupt"
    status = 500


class KeystoreWeakKdf(KeystoreError):
    """The keystore's passphrase stretching is weaker than this device requires."""

    code = "keystore_weak_kdf"
    status = 500


# --- signatures -------------------------------------------------------------------------
class SignatureInvalid(KeysError):
    """The signature does not verify with the expected key."""

    code = "signature_invalid"
    status = 401
    title = "The signature does not verify"


# --- envelope -----------------------------------------------------------------------------
class EnvelopeError(KeysError):
    """The envelope was refused."""

    code = "envelope_invalid"


class EnvelopeMalformed(EnvelopeError):
    """The envelope's framing is broken (magic, lengths, sections)."""

    code = "envelope_malformed"


class EnvelopeHeaderInvalid(EnvelopeError):
    """The envelope header is not canonical or misses required fields."""

    code = "envelope_header_invalid"


class EnvelopeSenderUnknown(EnvelopeError):
    """The sender's signing key is not an active key in the verified directory."""

    code = "sender_unknown"


class EnvelopeSignatureInvalid(EnvelopeError, SignatureInvalid):
    """The envelope signature does not verify: header, keys or body were altered."""

    code = "envelope_signature_invalid"


class EnvelopeNotForThisDevice(EnvelopeError):
    """No wrapped key in the envelope is addressed to this device's key."""

    code = "not_a_recipient"


class EnvelopeWrappedKeyInvalid(EnvelopeError):
    """A wrapped key does not open or is bound to a different header (re-addressed)."""

    code = "wrapped_key_invalid"


class EnvelopeBodyInvalid(EnvelopeError):
    """A body chunk failed authentication (altered, reordered or from another body)."""

    code = "body_chunk_invalid"


class EnvelopeTruncated(EnvelopeError):
    """The body ends without a FINAL chunk: it was truncated."""

    code = "body_truncated"


class EnvelopeTrailingData(EnvelopeError):
    """There are bytes after the end of the envelope."""

    code = "trailing_data"


class EnvelopeTooLarge(EnvelopeError):
    """The envelope exceeds a configured size limit."""

    code = "envelope_too_large"
    status = 413


# --- directory ----------------------------------------------------------------------------
class DirectoryError(KeysError):
    """The key directory was refused."""

    code = "directory_invalid"
    status = 422


class DirectoryEntryInvalid(DirectoryError):
    """A directory entry is malformed or not allowed in the current state."""

    code = "directory_entry_invalid"
    status = 422


class DirectoryChainBroken(DirectoryError):
    """A directory entry's seq or prev_hash does not continue the chain."""

    code = "directory_chain_broken"
    status = 409


class DirectorySignatureInvalid(DirectoryError, SignatureInvalid):
    """A directory entry or checkpoint signature does not verify."""

    code = "directory_signature_invalid"
    status = 422


class DirectoryNotAdmin(DirectoryError):
    """The entry is signed by a key that is not a current security admin."""

    code = "directory_not_admin"
    status = 422


class DirectoryForked(DirectoryError):
    """The directory's history differs from a head this client has already seen."""

    code = "directory_forked"
    status = 409


class DirectoryUnknownKey(DirectoryError):
    """No such device or key version in the directory."""

    code = "directory_unknown_key"
    status = 422


# --- subject references -------------------------------------------------------------------
class SubjectIdInvalid(KeysError):
    """Not a valid personnummer or samordningsnummer."""

    code = "personnummer_invalid"
    status = 422


# --- directory (added with the directory verifier) ---------------------------------------
class DirectoryKeyRevoked(DirectoryUnknownKey):
    """The device's keys were revoked: nothing it signs or is sent may be trusted."""

    code = "directory_key_revoked"
    status = 422


class DirectoryBehind(DirectoryError):
    """The checkpoint is ahead of this directory: sync the log first, then check again."""

    code = "directory_behind"
    status = 409


class EnrolmentRequestInvalid(DirectoryError):
    """The enrolment or rotation request is malformed."""

    code = "enrolment_request_invalid"
    status = 422


class RecipientUnitNoDevice(DirectoryUnknownKey):
    """The recipient unit has no active device: nobody could open what is sealed to it."""

    code = "recipient_unit_no_device"
    status = 422


# --- HTTP request signatures (RFC 9421) and content digests (RFC 9530) ---------------------
class HttpSignatureMissing(KeysError):
    """The request carries no Signature-Input or Signature header."""

    code = "signature_missing"
    status = 401
    title = "The request is not signed"


class HttpSignatureMalformed(KeysError):
    """The request signature headers do not have the required form."""

    code = "signature_malformed"
    status = 401
    title = "The request signature headers are malformed"


class DigestMismatch(KeysError):
    """The Content-Digest header does not match the request body."""

    code = "digest_mismatch"
    title = "The Content-Digest does not match the body"


# --- consent records, handover receipts, audit chain (helper "domain") ----------------------
class ConsentRecordInvalid(KeysError):
    """The consent record is malformed: unknown or missing fields, wrong types or formats."""

    code = "consent_record_invalid"
    status = 422


class ConsentSignatureInvalid(SignatureInvalid):
    """The consent record's signature does not verify with the recording device's key."""

    code = "consent_signature_invalid"
    status = 422


class ReceiptInvalid(KeysError):
    """The handover receipt is malformed."""

    code = "receipt_invalid"
    status = 422


class ReceiptMismatch(ReceiptInvalid):
    """The receipt is for another message, another envelope header or another recipient."""

    code = "receipt_mismatch"
    status = 422


class ReceiptSignatureInvalid(SignatureInvalid):
    """The handover receipt's signature does not verify with the recipient device's key."""

    code = "receipt_signature_invalid"
    status = 422


class AuditError(KeysError):
    """The audit trail was refused."""

    code = "audit_invalid"
    status = 500


class AuditEntryInvalid(AuditError):
    """An audit entry is malformed."""

    code = "audit_entry_invalid"
    status = 500


class AuditDataForbidden(AuditEntryInvalid):
    """Audit data holds a field that may carry content or secrets; the trail never does."""

    code = "audit_data_forbidden"
    status = 500


class AuditChainBroken(AuditError):
    """An audit entry's seq or prev_hash does not continue the chain (dropped/inserted/moved)."""

    code = "audit_chain_broken"


class AuditEntryAltered(AuditError):
    """An audit entry does not hash to its recorded hash: it was edited."""

    code = "audit_entry_altered"


class AuditCheckpointMismatch(AuditError):
    """The audit chain does not reach the head of a signed checkpoint."""

    code = "audit_checkpoint_mismatch"


class AuditTruncated(AuditCheckpointMismatch):
    """The audit chain is shorter than a signed checkpoint: entries were cut off."""

    code = "audit_truncated"


class AuditCheckpointSignatureInvalid(SignatureInvalid):
    """An audit checkpoint's signature does not verify with the gateway's key."""

    code = "audit_checkpoint_signature_invalid"


ALL_ERRORS: tuple[type[KeysError], ...] = tuple(
    cls for cls in REGISTRY.values() if issubclass(cls, KeysError)
)
"""The key errors defined in this module (a view of the registry, not a second list)."""

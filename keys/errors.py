"""One error hierarchy for everything in ``keys/``.

Every class carries a stable ``code`` (snake_case) that the gateway's problem+json
registry and the SDK share, so a refusal means the same thing wherever it is seen.
Messages never include key material, plaintext or subject references: they say what
was wrong, not with what.
"""

from __future__ import annotations


class KeysError(Exception):
    """Base class: something about keys, envelopes or the directory was refused."""

    code = "crypto_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)


# --- key material -------------------------------------------------------------------
class KeyInvalid(KeysError):
    """The key is malformed: wrong size, a low-order or non-canonical point."""

    code = "key_invalid"


class KeyIdInvalid(KeysError):
    """The key id is not of the form unit/device/version."""

    code = "key_id_invalid"


# --- keystore -------------------------------------------------------------------------
class KeystoreError(KeysError):
    """The keystore could not be used."""

    code = "keystore_error"


class KeystoreWrongPassphrase(KeystoreError):
    """The passphrase does not open this keystore."""

    code = "keystore_wrong_passphrase"


class KeystoreCorrupt(KeystoreError):
    """The keystore file is damaged or not a Stafett keystore."""

    code = "keystore_corrupt"


class KeystoreWeakKdf(KeystoreError):
    """The keystore's passphrase stretching is weaker than this device requires."""

    code = "keystore_weak_kdf"


# --- signatures -------------------------------------------------------------------------
class SignatureInvalid(KeysError):
    """The signature does not verify with the expected key."""

    code = "signature_invalid"


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


# --- directory ----------------------------------------------------------------------------
class DirectoryError(KeysError):
    """The key directory was refused."""

    code = "directory_invalid"


class DirectoryEntryInvalid(DirectoryError):
    """A directory entry is malformed or not allowed in the current state."""

    code = "directory_entry_invalid"


class DirectoryChainBroken(DirectoryError):
    """A directory entry's seq or prev_hash does not continue the chain."""

    code = "directory_chain_broken"


class DirectorySignatureInvalid(DirectoryError, SignatureInvalid):
    """A directory entry or checkpoint signature does not verify."""

    code = "directory_signature_invalid"


class DirectoryNotAdmin(DirectoryError):
    """The entry is signed by a key that is not a current security admin."""

    code = "directory_not_admin"


class DirectoryForked(DirectoryError):
    """The directory's history differs from a head this client has already seen."""

    code = "directory_forked"


class DirectoryUnknownKey(DirectoryError):
    """No such device or key version in the directory."""

    code = "directory_unknown_key"


# --- subject references -------------------------------------------------------------------
class SubjectIdInvalid(KeysError):
    """Not a valid personnummer or samordningsnummer."""

    code = "personnummer_invalid"


ALL_ERRORS: tuple[type[KeysError], ...] = (
    KeysError,
    KeyInvalid,
    KeyIdInvalid,
    KeystoreError,
    KeystoreWrongPassphrase,
    KeystoreCorrupt,
    KeystoreWeakKdf,
    SignatureInvalid,
    EnvelopeError,
    EnvelopeMalformed,
    EnvelopeHeaderInvalid,
    EnvelopeSenderUnknown,
    EnvelopeSignatureInvalid,
    EnvelopeNotForThisDevice,
    EnvelopeWrappedKeyInvalid,
    EnvelopeBodyInvalid,
    EnvelopeTruncated,
    EnvelopeTrailingData,
    EnvelopeTooLarge,
    DirectoryError,
    DirectoryEntryInvalid,
    DirectoryChainBroken,
    DirectorySignatureInvalid,
    DirectoryNotAdmin,
    DirectoryForked,
    DirectoryUnknownKey,
    SubjectIdInvalid,
)


# --- directory (added with the directory verifier) ---------------------------------------
class DirectoryKeyRevoked(DirectoryUnknownKey):
    """The device's keys were revoked: nothing it signs or is sent may be trusted."""

    code = "directory_key_revoked"


class DirectoryBehind(DirectoryError):
    """The checkpoint is ahead of this directory: sync the log first, then check again."""

    code = "directory_behind"


class EnrolmentRequestInvalid(DirectoryError):
    """The enrolment or rotation request is malformed."""

    code = "enrolment_request_invalid"


class RecipientUnitNoDevice(DirectoryUnknownKey):
    """The recipient unit has no active device: nobody could open what is sealed to it."""

    code = "recipient_unit_no_device"


ALL_ERRORS = (
    *ALL_ERRORS,
    DirectoryKeyRevoked,
    DirectoryBehind,
    EnrolmentRequestInvalid,
    RecipientUnitNoDevice,
)


# --- HTTP request signatures (RFC 9421) and content digests (RFC 9530) ---------------------
class HttpSignatureMissing(KeysError):
    """The request carries no Signature-Input or Signature header."""

    code = "signature_missing"


class HttpSignatureMalformed(KeysError):
    """The request signature headers do not have the required form."""

    code = "signature_malformed"


class DigestMismatch(KeysError):
    """The Content-Digest header does not match the request body."""

    code = "digest_mismatch"


ALL_ERRORS = (*ALL_ERRORS, HttpSignatureMissing, HttpSignatureMalformed, DigestMismatch)


# --- consent records, handover receipts, audit chain (helper "domain") ----------------------
class ConsentRecordInvalid(KeysError):
    """The consent record is malformed: unknown or missing fields, wrong types or formats."""

    code = "consent_record_invalid"


class ConsentSignatureInvalid(SignatureInvalid):
    """The consent record's signature does not verify with the recording device's key."""

    code = "consent_signature_invalid"


class ReceiptInvalid(KeysError):
    """The handover receipt is malformed."""

    code = "receipt_invalid"


class ReceiptMismatch(ReceiptInvalid):
    """The receipt is for another message, another envelope header or another recipient."""

    code = "receipt_mismatch"


class ReceiptSignatureInvalid(SignatureInvalid):
    """The handover receipt's signature does not verify with the recipient device's key."""

    code = "receipt_signature_invalid"


class AuditError(KeysError):
    """The audit trail was refused."""

    code = "audit_invalid"


class AuditEntryInvalid(AuditError):
    """An audit entry is malformed."""

    code = "audit_entry_invalid"


class AuditDataForbidden(AuditEntryInvalid):
    """Audit data holds a field that may carry content or secrets; the trail never does."""

    code = "audit_data_forbidden"


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


ALL_ERRORS = (
    *ALL_ERRORS,
    ConsentRecordInvalid,
    ConsentSignatureInvalid,
    ReceiptInvalid,
    ReceiptMismatch,
    ReceiptSignatureInvalid,
    AuditError,
    AuditEntryInvalid,
    AuditDataForbidden,
    AuditChainBroken,
    AuditEntryAltered,
    AuditCheckpointMismatch,
    AuditTruncated,
    AuditCheckpointSignatureInvalid,
)

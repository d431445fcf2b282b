"""The one error registry of the gateway: stable code → class, HTTP status and title.

The SDK imports this module to map a problem+json ``code`` back to the same exception
class, so it must stay importable without aiohttp or SQLAlchemy (the rendering
middleware lives in ``gateway.middlewares``). ``keys.errors`` codes are part of the
registry too: a refusal by the envelope verifier means the same thing on both sides.

Details never carry content, subject references, keys or tokens: they say what was
wrong, not with what.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.policy.errors import ALL_POLICY_ERRORS, PolicyError
from keys import errors as kerr
from keys.canonical import NotCanonical

PROBLEM_BASE = "https://stafett.example/problems/"


class GatewayError(Exception):
    """Base class of every refusal the gateway answers with problem+json."""

    code: ClassVar[str] = "gateway_error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request refused"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)


# --- generic request problems ----------------------------------------------------------
class BadRequest(GatewayError):
    code, status, title = "bad_request", 400, "The request is malformed"


class JsonInvalid(GatewayError):
    code, status, title = "json_invalid", 400, "The body is not a valid JSON object"


class UnknownField(GatewayError):
    # Unknown fields are refused rather than ignored: a client that believes it set a
    # restriction (a field the server does not know) must not silently lose it.
    code, status, title = "unknown_field", 400, "The body has a field this endpoint does not know"


class FieldMissing(GatewayError):
    code, status, title = "field_missing", 400, "A required field is missing"


class FieldInvalid(GatewayError):
    code, status, title = "field_invalid", 400, "A field has an invalid value"


class UnsupportedMediaType(GatewayError):
    code, status, title = "unsupported_media_type", 415, "Unsupported Content-Type"


class BodyTooLarge(GatewayError):
    code, status, title = "body_too_large", 413, "The request body is too large"


class HeadersTooLarge(GatewayError):
    code, status, title = "headers_too_large", 431, "The request headers are too large"


class NotFound(GatewayError):
    code, status, title = "not_found", 404, "No such resource"


class MethodNotAllowed(GatewayError):
    code, status, title = "method_not_allowed", 405, "Method not allowed"


class RateLimited(GatewayError):
    code, status, title = "rate_limited", 429, "Too many requests from this device"


# --- issue 12 (transport hardening) ------------------------------------------------------
class RequestTimeout(GatewayError):
    # A body that stalls or trickles below the minimum rate (gateway.transport): the
    # connection is closed after this answer, so a slow client cannot hold it.
    code, status, title = "request_timeout", 408, "The request body arrived too slowly"


class InternalError(GatewayError):
    code, status, title = "internal_error", 500, "Internal error"


class ServiceUnavailable(GatewayError):
    code, status, title = "unavailable", 503, "The service is not ready"


# --- authentication (RFC 9421 request signatures) ----------------------------------------
class SignatureExpired(GatewayError):
    code, status, title = "signature_expired", 401, "The request signature is too old"


class SignatureFuture(GatewayError):
    code, status, title = "signature_future", 401, "The request signature is from the future"


class Replayed(GatewayError):
    code, status, title = "replayed", 401, "The request nonce was already used"


class DigestMissing(GatewayError):
    code, status, title = "digest_missing", 400, "A body needs a signed Content-Digest"


class DeviceUnknown(GatewayError):
    code, status, title = "device_unknown", 401, "No such device key in the directory"


class DeviceRevoked(GatewayError):
    code, status, title = "device_revoked", 401, "The device was revoked"


class KeyRetired(GatewayError):
    code, status, title = "key_retired", 401, "This key version is retired for signing"


class AdminRequired(GatewayError):
    code, status, title = "admin_required", 403, "Only a security admin may do this"


class DeviceRequired(GatewayError):
    code, status, title = "device_required", 403, "Only a unit device may do this"


class Forbidden(GatewayError):
    code, status, title = "forbidden", 403, "The caller may not access this resource"


# --- messages (used by the message handlers; consent/policy codes: gateway.policy.errors) ---
class ConsentConflict(GatewayError):
    code, status, title = "consent_conflict", 409, "A different consent with this id exists"


class MessageNotFound(GatewayError):
    code, status, title = "message_not_found", 404, "No such message"


class MessageIdConflict(GatewayError):
    code, status, title = "message_id_conflict", 409, "A different message has this id"


class MessageExpired(GatewayError):
    code, status, title = "message_expired", 410, "The message expired"


class RecipientKeyTooOld(GatewayError):
    code, status, title = "recipient_key_too_old", 422, "A recipient key is below the minimum"


class MessageIdMismatch(GatewayError):
    code, status, title = (
        "message_id_mismatch",
        400,
        "The message id in the path differs from the envelope header",
    )


class SenderMismatch(GatewayError):
    # Threat: a device uploading an envelope signed by (or naming) another device.
    code, status, title = "sender_mismatch", 403, "A device can only send as itself"


class RecipientUnitUnknown(GatewayError):
    code, status, title = (
        "recipient_unit_unknown",
        422,
        "The recipient unit is not in the directory",
    )


class RecipientUnknown(GatewayError):
    code, status, title = (
        "recipient_unknown",
        422,
        "A recipient key is not an enrolled, unrevoked device key of the recipient unit",
    )


class MessageGone(GatewayError):
    code, status, title = "message_gone", 410, "The message content is no longer held"


class ReceiptNotFound(GatewayError):
    code, status, title = "receipt_not_found", 404, "No receipt for this message yet"


_GATEWAY_ERRORS: tuple[type[GatewayError], ...] = (
    GatewayError,
    BadRequest,
    JsonInvalid,
    UnknownField,
    FieldMissing,
    FieldInvalid,
    UnsupportedMediaType,
    BodyTooLarge,
    HeadersTooLarge,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    RequestTimeout,
    InternalError,
    ServiceUnavailable,
    SignatureExpired,
    SignatureFuture,
    Replayed,
    DigestMissing,
    DeviceUnknown,
    DeviceRevoked,
    KeyRetired,
    AdminRequired,
    DeviceRequired,
    Forbidden,
    ConsentConflict,
    MessageNotFound,
    MessageIdConflict,
    MessageExpired,
    RecipientKeyTooOld,
    MessageIdMismatch,
    SenderMismatch,
    RecipientUnitUnknown,
    RecipientUnknown,
    MessageGone,
    ReceiptNotFound,
)

# HTTP status for each keys.errors code. Anything not listed is a 400: the client sent
# something the key layer refused. Authentication failures are 401, payload refusals 422.
_KEYS_STATUS: dict[str, int] = {
    "signature_invalid": 401,
    "signature_missing": 401,
    "signature_malformed": 401,
    "digest_mismatch": 400,
    "key_id_invalid": 401,
    "keystore_error": 500,
    "keystore_wrong_passphrase": 500,
    "keystore_corrupt": 500,
    "keystore_weak_kdf": 500,
    "directory_invalid": 422,
    "directory_entry_invalid": 422,
    "directory_chain_broken": 409,
    "directory_signature_invalid": 422,
    "directory_not_admin": 422,
    "directory_forked": 409,
    "directory_unknown_key": 422,
    "directory_key_revoked": 422,
    "directory_behind": 409,
    "enrolment_request_invalid": 422,
    "envelope_too_large": 413,
    "personnummer_invalid": 422,
    "consent_record_invalid": 422,
    "consent_signature_invalid": 422,
    "receipt_invalid": 422,
    "receipt_mismatch": 422,
    "receipt_signature_invalid": 422,
    # The gateway writes audit entries itself: a refused entry is a bug of ours.
    "audit_invalid": 500,
    "audit_entry_invalid": 500,
    "audit_data_forbidden": 500,
}
_KEYS_TITLES: dict[str, str] = {
    "signature_invalid": "The signature does not verify",
    "signature_missing": "The request is not signed",
    "signature_malformed": "The request signature headers are malformed",
    "digest_mismatch": "The Content-Digest does not match the body",
}


def _keys_classes() -> list[type[kerr.KeysError]]:
    seen: dict[str, type[kerr.KeysError]] = {}
    pending: list[type[kerr.KeysError]] = [*kerr.ALL_ERRORS, NotCanonical]
    # Subclasses defined after ALL_ERRORS was written (keys/httpsig.py, ...) count too.
    while pending:
        cls = pending.pop(0)
        seen.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return list(seen.values())


def _build_registry() -> dict[str, type[Exception]]:
    registry: dict[str, type[Exception]] = {}
    for cls in _GATEWAY_ERRORS:
        registry[cls.code] = cls
    for pcls in ALL_POLICY_ERRORS:
        if pcls.code in registry:
            raise RuntimeError(f"error code {pcls.code} is defined twice")
        registry[pcls.code] = pcls
    for kcls in _keys_classes():
        if kcls.code in registry and registry[kcls.code] is not kcls:
            raise RuntimeError(f"error code {kcls.code} is defined twice")
        registry[kcls.code] = kcls
    return registry


ERRORS: dict[str, type[Exception]] = _build_registry()
"""Every stable code → its exception class (gateway and keys)."""


def status_of(exc: BaseException) -> int:
    if isinstance(exc, GatewayError | PolicyError):
        return int(exc.status)
    if isinstance(exc, kerr.KeysError):
        return _KEYS_STATUS.get(exc.code, 400)
    return 500


def code_of(exc: BaseException) -> str:
    if isinstance(exc, GatewayError | PolicyError | kerr.KeysError):
        return str(exc.code)
    return InternalError.code


def title_of(code: str) -> str:
    cls = ERRORS.get(code)
    if cls is not None and issubclass(cls, GatewayError):
        return cls.title
    if code in _KEYS_TITLES:
        return _KEYS_TITLES[code]
    if cls is not None and cls.__doc__:
        return cls.__doc__.strip().splitlines()[0].rstrip(".")
    return "Request refused"


def status_for_code(code: str) -> int:
    cls = ERRORS.get(code)
    if cls is not None and issubclass(cls, GatewayError | PolicyError):
        return int(cls.status)
    return _KEYS_STATUS.get(code, 400 if cls is not None else 500)


def problem_body(code: str, detail: str | None = None) -> dict[str, Any]:
    """The RFC 9457 problem document for ``code`` (``detail`` defaults to the title)."""
    title = title_of(code)
    return {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status_for_code(code),
        "detail": detail or title,
        "code": code,
    }


def error_from_problem(body: dict[str, Any]) -> Exception:
    """SDK side: rebuild the exception for a problem document (unknown codes → base)."""
    code = str(body.get("code", ""))
    detail = str(body.get("detail", "")) or None
    cls = ERRORS.get(code)
    if cls is None:
        return GatewayError(detail)
    return cls(detail)

"""Problem details (RFC 9457) over the one registry, and the request-level refusals.

Every refusal is a :class:`keys.errors.StafettError` that registered itself when it was
defined; this module imports the modules that define them, so :data:`ERRORS` is complete
once it is imported. The gateway's middleware (``gateway.middlewares``) renders with
:func:`problem_body`; the SDK rebuilds the exception with :func:`error_from_problem`, so
this module stays importable without aiohttp or SQLAlchemy.

Details never carry content, subject references, keys or tokens: they say what was
wrong, not with what.
"""

from __future__ import annotations

from typing import Any, ClassVar

from keys.crypto import canonical  # noqa: F401  (defines NotCanonical: registers it)
from keys.errors import REGISTRY, StafettError
from keys.protocol import refusals  # noqa: F401  (the domain's refusals register here)

PROBLEM_BASE = "https://stafett.example/problems/"


class GatewayError(StafettError):
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
    # 403, not 401: the signature verified, the key is known and will never work again;
    # a client must say "revoked, contact the security admin", not "try again later".
    code, status, title = "device_revoked", 403, "The device was revoked"


class KeyRetired(GatewayError):
    code, status, title = "key_retired", 401, "This key version is retired for signing"


class AdminRequired(GatewayError):
    code, status, title = "admin_required", 403, "Only a security admin may do this"


class DeviceRequired(GatewayError):
    code, status, title = "device_required", 403, "Only a unit device may do this"


class IntegrationDeviceRequired(GatewayError):
    code, status, title = (
        "integration_device_required",
        403,
        "Only the unit's integration device may do this",
    )


class Forbidden(GatewayError):
    code, status, title = "forbidden", 403, "The caller may not access this resource"


# --- messages (used by the message handlers; consent/policy codes: keys.protocol.refusals) ---
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


ERRORS: dict[str, type[StafettError]] = REGISTRY
"""Every stable code → its exception class (the registry of ``keys.errors``)."""


def status_of(exc: BaseException) -> int:
    return exc.status if isinstance(exc, StafettError) else 500


def code_of(exc: BaseException) -> str:
    return exc.code if isinstance(exc, StafettError) else InternalError.code


def title_of(code: str) -> str:
    cls = ERRORS.get(code)
    return cls.title if cls is not None else "Request refused"


def status_for_code(code: str) -> int:
    cls = ERRORS.get(code)
    return cls.status if cls is not None else 500


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

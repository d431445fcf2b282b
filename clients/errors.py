"""Errors the SDK raises itself (everything the gateway refuses keeps its registry class).

A refusal that arrives as ``application/problem+json`` is rebuilt with
``keys.protocol.problems.error_from_problem``: the caller catches the same class the gateway
raised (``ConsentWithdrawn``, ``Replayed``, ``DeviceRevoked`` ...). The classes here
cover what no gateway said: it could not be reached, it answered something that is not
our protocol, or the SDK refused to go on (e.g. nothing known to acknowledge).

Messages never carry content, subject references, keys or tokens.
"""

from __future__ import annotations

__all__ = [
    "AlreadyOpened",
    "ClientError",
    "EnvelopeExpired",
    "EnvelopeReplayed",
    "EnvelopeSwapped",
    "GatewayUnavailable",
    "NotOpened",
    "UnexpectedResponse",
]


class ClientError(Exception):
    """Base class of the SDK's own errors."""

    code = "client_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)


class GatewayUnavailable(ClientError):
    """The gateway could not be reached (connection refused, reset or timed out)."""

    code = "gateway_unavailable"


class UnexpectedResponse(ClientError):
    """The gateway answered with something that is not the Stafett protocol."""

    code = "unexpected_response"

    def __init__(self, message: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotOpened(ClientError):
    """The message was not opened by this client: there is no header hash to sign for."""

    code = "not_opened"


class EnvelopeSwapped(ClientError):
    """The gateway served an envelope for another message or another unit than asked for."""

    code = "envelope_swapped"


class AlreadyOpened(ClientError):
    """This device already opened that message: opening it again needs ``reopen=True``.

    Threat: a gateway replaying an old, genuine envelope under its own id; an officer
    must not take an old message for a new one.
    """

    code = "already_opened"


class EnvelopeReplayed(ClientError):
    """The gateway served another envelope under a message id this device already opened."""

    code = "envelope_replayed"


class EnvelopeExpired(ClientError):
    """The envelope's signed expiry has passed: the gateway should have deleted it.

    Serving it now is a replay (or a gateway that failed to delete); the sender was or
    will be told that it was not handed over.
    """

    code = "envelope_expired"

    def __init__(self, expires: int) -> None:
        super().__init__(f"the envelope expired at {expires} (Unix time)")
        self.expires = expires

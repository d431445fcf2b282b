"""Who made a request, and what each kind of caller may do: plain values and checks.

Built by the authentication middleware (``gateway.auth``, the only aiohttp side of it)
and passed to the services, which import this module and never aiohttp. The checks
raise registered problems (``admin_required``, ``device_required``, ``device_revoked``,
``key_retired``) that the problem middleware renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keys.crypto.keypairs import DeviceId, KeyId
from keys.protocol.directory import Directory
from keys.protocol.problems import (
    AdminRequired,
    DeviceRequired,
    DeviceRevoked,
    DeviceUnknown,
    IntegrationDeviceRequired,
    KeyRetired,
)

__all__ = [
    "Caller",
    "PendingNonce",
    "require_active_key",
    "require_admin",
    "require_device",
    "require_integration_device",
]


@dataclass(slots=True)
class PendingNonce:
    """A verified request's nonce that is stored in the request's own unit of work
    (``gateway.services.request_unit``) instead of a transaction of its own.

    ``stored`` turns True once a committed transaction holds it; until then the request
    must not have had any effect. Whatever way the request ends — its unit, a refusal
    (the problem middleware stores it with the refusal's audit entry) or an answer
    without a unit (the authentication middleware stores it before the answer leaves)
    — the nonce ends up stored, so a replay is always refused.
    """

    keyid: str
    nonce: str
    created: int
    # The last second at which the nonce may still be claimed: after it, the purge may
    # have forgotten an earlier use of the same nonce (gateway.db.nonce_store).
    decide_by: int
    stored: bool = False


@dataclass(frozen=True)
class Caller:
    """Who signed the request. ``device`` is None for a security admin."""

    kid: KeyId
    unit: str
    device: DeviceId | None
    is_admin: bool
    nonce: PendingNonce | None = field(default=None, compare=False)


def require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise AdminRequired()


def require_device(caller: Caller) -> DeviceId:
    if caller.device is None:
        raise DeviceRequired()
    return caller.device


def require_integration_device(directory: Directory, caller: Caller) -> DeviceId:
    """``caller`` is a device enrolled with role ``integration`` (the unit's case-system
    bridge), not an officer's computer (``integration_device_required``).

    Threat: an officer's device — or whoever took it over — pointing the unit's
    notifications at an endpoint of their choosing, or deleting the endpoint the case
    system relies on. The role is in the verified directory, set by a security admin
    at enrolment, so who may do this is decided in the key ceremony, not by the
    gateway's operators.
    """
    device = require_device(caller)
    record = directory.devices.get(str(device))
    if record is None or record.role != "integration":
        raise IntegrationDeviceRequired()
    return device


def require_active_key(directory: Directory, kid: KeyId) -> None:
    """``kid`` may act for its device in ``directory``: enrolled, the device not revoked
    (``device_revoked``), the device's current, active version (``key_retired``).

    Run at authentication and again where a decision commits (a send): a device
    revoked while its request was under way is refused with the same code."""
    record = directory.devices.get(str(kid.device))
    if record is None or kid.version not in record.versions:
        raise DeviceUnknown()
    # A re-enrolled device is not revoked, but its old (revoked) versions stay so.
    if record.revoked or record.versions[kid.version].status == "revoked":
        raise DeviceRevoked()
    if kid.version != record.current_version or record.versions[kid.version].status != "active":
        raise KeyRetired()

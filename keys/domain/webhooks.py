"""Webhook rules as plain functions: the retry schedule, what a notification may say,
and how it is signed (Standard Webhooks, https://www.standardwebhooks.com/).

Why Standard Webhooks and not our request-signature profile: the receiver is a case
system's integration platform, often in another language, where Standard Webhooks has
ready libraries and needs only HMAC-SHA256 (no Ed25519, no RFC 9421 base building, no
directory). The secret is per webhook of a unit, shown once at registration.

No I/O here; ``now`` is always a parameter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# Tries at +0, +1, +4 and +12 minutes: four tries within 12 minutes, then ``failed``.
RETRY_DELAYS_S = (60, 180, 480)
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
SECRET_PREFIX = "whsec_"  # noqa: S105  # the Standard Webhooks prefix, not a secret
# What a notification may carry from an event's data: ids, codes, states and times.
# Never the sender's kid (it names an officer), never a subject reference or content.
_ALLOWED_DATA = frozenset(
    {
        "state",
        "reason",
        "category",
        "purpose",
        "consent_id",
        "due",
        "expires",
        "valid_until",
        "days_left",
        "role",
    }
)
_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def next_attempt_at(attempts: int, now: int) -> int | None:
    """When to try again after ``attempts`` failed tries; None: give up (``failed``)."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return now + RETRY_DELAYS_S[attempts - 1]


DERIVED_PREFIX = "derived:"
DERIVE_PERSON = b"stafett-webhook"


def new_salt() -> str:
    """What the database stores instead of the secret (see ``secret_from``)."""
    return DERIVED_PREFIX + secrets.token_hex(16)


def secret_from(stored: str, webhook_id: str, derive: Callable[[bytes, bytes], bytes]) -> str:
    """The webhook's secret from what is stored: a salt, the secret being derived from
    the gateway's identity key (``derive`` = ``SigningKey.derive``). A row stored in
    clear by an earlier version (``whsec_...``) is used as it is."""
    if stored.startswith(SECRET_PREFIX):
        return stored
    mac = derive(DERIVE_PERSON, f"{webhook_id}\n{stored}".encode())
    return SECRET_PREFIX + base64.b64encode(mac[:24]).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def notification(
    *, seq: int, unit: str, kind: str, message_id: str | None, created: int, data: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body: ids and codes only (the allow-list above)."""
    safe = {
        k: v
        for k, v in data.items()
        if k in _ALLOWED_DATA
        and (type(v) is int or v is None or (isinstance(v, str) and _CODE_RE.fullmatch(v)))
    }
    return {
        "type": kind,
        "timestamp": datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z"),
        "data": {"event_seq": seq, "unit": unit, "message_id": message_id, **safe},
    }


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        "content-type": "application/json",
    }


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()

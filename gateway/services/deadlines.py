"""Due times at acceptance: the deadline policy applied to a message's flow.

The policy (``keys.domain.deadlines``) is keyed by unit *kinds*; the kinds come from
the verified directory, never from the envelope header (threat: a sender that could
name its own kind could pick the flow with the most lenient deadline, or none).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gateway.settings import Settings
from keys.domain.deadlines import DeadlinePolicy, load_deadline_policy
from keys.protocol.directory import Directory


@cache
def _policy_at(path: Path | None) -> DeadlinePolicy:
    return load_deadline_policy(path)


def deadline_policy(settings: Settings) -> DeadlinePolicy:
    """The policy named by ``settings.deadline_policy`` (None: the packaged default).

    Read and checked once per process (``cli serve`` loads it at start-up, so a broken
    file stops the gateway before it accepts anything), then shared.
    """
    path = settings.deadline_policy
    return _policy_at(None if path is None else path.resolve())


def due_for(
    policy: DeadlinePolicy,
    directory: Directory,
    *,
    sender_unit: str,
    recipient_unit: str,
    purpose: str,
    accepted_at: int,
) -> int | None:
    """The due time of a message accepted at ``accepted_at``, or None (no rule)."""
    sender = directory.units.get(sender_unit)
    recipient = directory.units.get(recipient_unit)
    if sender is None or recipient is None:
        return None
    return policy.due(sender.kind, recipient.kind, purpose, accepted_at)

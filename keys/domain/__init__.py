"""The pure domain core: consent specificity and decisions, message lifecycle.

No I/O here (no aiohttp, SQLAlchemy, APScheduler, nacl): plain functions over plain
values with ``now`` passed in, so tests use literal numbers and every rule is easy to
read and to test exhaustively.
"""

from keys.domain.consent import Consent, ConsentPolicy, Decision, check_specific, decide, withdraw
from keys.domain.lifecycle import (
    MessageEvent,
    MessageState,
    effective_expiry,
    is_pending,
    transition,
)
from keys.protocol.refusals import ALL_POLICY_ERRORS, PolicyError
from keys.protocol.vocabulary import Vocabulary, load_vocabulary

__all__ = [
    "ALL_POLICY_ERRORS",
    "Consent",
    "ConsentPolicy",
    "Decision",
    "MessageEvent",
    "MessageState",
    "PolicyError",
    "Vocabulary",
    "check_specific",
    "decide",
    "effective_expiry",
    "is_pending",
    "load_vocabulary",
    "transition",
    "withdraw",
]

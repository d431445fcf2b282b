"""``stafett bridge``: a unit's case system talks to Stafett through two folders.

Outgoing, the case system drops documents plus a sidecar into ``outbox/``; each drop is
sent exactly once and filed in ``sent/`` (with the verified receipt once it arrives) or
``failed/`` (with a reason in Swedish and English). Incoming, each handover is written
durably into ``inbox/<message_id>/`` with its handover record, and only then receipted.

Built on the officer-side public APIs only (``clients.sdk``, ``clients.errors``, the
``keys`` API); see ``docs/integration.md`` for the folder contract.
"""

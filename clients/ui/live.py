"""Live updates: the SDK's push stream fed to the open pages as Server-Sent Events.

The pump runs while the keystore is unlocked; each event (``inbox.new``,
``outbox.handed_over``, ``inbox.removed``, ``consent.ending``, ...) is turned into one
line of text from the shared table and handed to every open page, which refreshes its
list and shows a browser notification. Events name ids and codes only, never content.
A lock is announced too, so every open tab leaves the case on screen at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from clients.cli.texts import Texts
from clients.local.timefmt import when
from clients.sdk.results import PushEvent
from clients.ui import vocab
from clients.ui.vault import Vault

log = logging.getLogger(__name__)
_REASON_GROUPS = {"outbox.rejected": "rejection_reasons", "outbox.withdrawn": "withdrawal_reasons"}
# Events older than the unlock are history (the stream replays from the start): shown
# in the lists, not announced again. A few seconds of slack for clock differences.
_ANNOUNCE_SLACK_S = 5


@dataclass(frozen=True)
class LiveEvent:
    kind: str
    message_id: str | None
    text: str

    def frame(self) -> bytes:
        data = json.dumps({"kind": self.kind, "message_id": self.message_id, "text": self.text})
        return f"event: stafett\ndata: {data}\n\n".encode()


class Broker:
    """Fan-out to the open pages; a slow page drops events rather than block the pump."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[LiveEvent]] = set()

    def subscribe(self) -> asyncio.Queue[LiveEvent]:
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=100)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[LiveEvent]) -> None:
        self._queues.discard(queue)

    def publish(self, event: LiveEvent) -> None:
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)


def describe(texts: Texts, event: PushEvent) -> str:
    data: dict[str, Any] = event.data
    reason = data.get("reason")
    group = _REASON_GROUPS.get(event.kind)
    reason_text = vocab.label(group, str(reason), texts.language) if group and reason else "-"
    values = {
        "message_id": (event.message_id or "-")[:8],
        "kind": event.kind,
        "state": texts(f"state_{data.get('state')}"),
        "reason": reason_text,
        "due": when(data.get("due") if type(data.get("due")) is int else None),
        "sender_unit": str(data.get("sender_unit") or "-"),
        "recipient_unit": str(data.get("recipient_unit") or "-"),
        "role": texts(f"role_{data.get('role')}") if data.get("role") else "-",
        "consent_id": str(data.get("consent_id") or "-")[:8],
        "until": when(data.get("valid_until") if type(data.get("valid_until")) is int else None),
        "days_left": str(data.get("days_left") or 0),
    }
    text = texts(f"event_{event.kind}", **values)
    return text if text != f"event_{event.kind}" else texts("event_other", **values)


async def pump(vault: Vault, broker: Broker, texts: Texts) -> None:
    """Until cancelled (the lock): push events → pages. Failures are logged (kind only)
    and the stream is retried, so one bad moment does not end live updates."""
    client = vault.client
    while True:
        try:
            async for event in client.events(0, reconnect_delay_s=1.0):
                if event.created + _ANNOUNCE_SLACK_S < vault.unlocked_at:
                    continue
                broker.publish(LiveEvent(event.kind, event.message_id, describe(texts, event)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # logged by class only: no ids, no content
            log.warning("push stream failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(2)

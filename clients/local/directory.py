"""Rebuilding the verified key directory up to the head this device verified last.

The keystore's known checkpoint (MAC-protected) says how far this device verified
before. The log up to there is fetched and appended first, so that the following sync
reports key changes since then (threat: a substituted key arriving silently between two
runs of the CLI or two unlocks of the web inbox).
"""

from __future__ import annotations

from typing import Any

from clients.sdk import StafettClient
from clients.sdk.directory_sync import PAGE
from keys.errors import DirectoryForked
from keys.protocol.directory import Directory, DirectoryEntry


async def replay_prefix(client: StafettClient, directory: Directory, size: int) -> None:
    """Append the gateway's entries to ``directory`` until it holds ``size``."""
    while directory.size < size:
        answer: Any = await client.transport.request(
            "GET",
            "/v1/directory/entries",
            query={"after": directory.size - 1, "limit": min(PAGE, size - directory.size)},
        )
        entries = answer.get("entries") if isinstance(answer, dict) else None
        if not isinstance(entries, list) or not entries:
            raise DirectoryForked("the gateway's directory is shorter than the verified head")
        for raw in entries[: size - directory.size]:
            directory.append(DirectoryEntry.from_json(raw))


async def replay_known(client: StafettClient) -> None:
    """Replay up to the keystore's known checkpoint when the directory is still empty,
    and insist the gateway's log continues the verified head there."""
    known = client.keystore.known_checkpoint
    directory = client.directory_sync.directory
    if known is not None and known[0] > 0 and directory.size == 0:
        await replay_prefix(client, directory, known[0])
        if directory.head.hex() != known[1]:
            raise DirectoryForked("the gateway's directory does not continue the verified head")

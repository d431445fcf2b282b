"""A damaged blob on disk is answered at once, not with a response that never ends."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from keys.protocol.problems import ServiceUnavailable
from tests.support.gateway import RunningGateway
from tests.support.sdk import ANNA, BO, blob_files, client, message_args, record_consent


@pytest.mark.parametrize("damage", ["truncated", "missing"])
@pytest.mark.asyncio
async def test_damaged_blob_is_answered_fast(
    gateway: RunningGateway, tmp_path: Path, damage: str
) -> None:
    async with client(gateway, ANNA) as anna, client(gateway, BO) as bo:
        sent = await anna.send(**message_args(await record_consent(anna)))
        (blob,) = blob_files(gateway)
        if damage == "truncated":
            os.truncate(blob, blob.stat().st_size // 2)
        else:
            blob.unlink()
        with pytest.raises(ServiceUnavailable):
            async with asyncio.timeout(5):  # the client's own timeout is far longer
                await bo.fetch(sent.message_id, tmp_path / "out.bin")

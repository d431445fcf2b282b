"""A consent's end through the CLI: the sender is told the capped expiry when it sends,
and ``status`` / ``watch`` say the message was withdrawn because the consent ended."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clients.cli.render import when
from gateway.appkeys import SESSIONMAKER
from gateway.jobs.expiry import expire_messages
from tests.support.cli import PNR, Cli


@pytest.mark.asyncio
async def test_send_is_capped_and_status_says_the_consent_ended(cli: Cli, tmp_path: Path) -> None:
    await cli.record_consent("sara", days=1)
    sent = (await cli.send("--days", "14")).json()
    # The consent's end, not the 14 days asked for; both are in the answer.
    assert sent["expires"] < sent["requested_expires"]
    assert sent["requested_expires"] - sent["expires"] > 12 * 86_400
    body = tmp_path / "text.txt"
    body.write_text("Hej")
    told = await cli.run(
        "sara",
        "send",
        "--pnr-stdin",
        "--to",
        "so-nordost",
        "--category",
        "case_transfer",
        "--purpose",
        "transfer_to_district",
        "--text-file",
        str(body),
        "--days",
        "14",
        stdin=PNR,
    )
    assert f"Samtycket upphör {when(sent['expires'])}" in told.out

    past_end = max(sent["expires"], int(time.time())) + 1
    assert await expire_messages(cli.gw.app[SESSIONMAKER], cli.gw.settings.blobs, now=past_end)
    [status] = (await cli.run("sara", "--json", "status", sent["message_id"])).json()["messages"]
    assert (status["state"], status["reason"]) == ("withdrawn", "consent_ended")
    sv = (await cli.run("sara", "status", sent["message_id"])).out
    assert "tillbakadraget: samtycket har upphört" in sv
    en = (await cli.run("sara", "--lang", "en", "status", sent["message_id"])).out
    assert "withdrawn: the consent has ended" in en

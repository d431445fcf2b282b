"""Consent recording through the shipped CLI against a real gateway, on both stores:
the free text of an oral consent never reaches the gateway, minors are found from the
number, a repeat is answered with the existing consent, ``--consent`` never takes the
place of the personnummer, and a withdrawal is confirmed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select

from gateway.appkeys import SESSIONMAKER
from gateway.db.models import Base
from keys.crypto.consent_free_text import FreeText
from tests.support.cli import PNR, Cli, provision
from tests.support.gateway import RunningGateway

WITNESS = "Wilma Qvarnstrom-Xyz, kurator"
NOTE = "Samtal i receptionen kl 14.05, tolk Ubbe Plk"
MINOR_PNR = "20150505-1233\n"  # born 2015: a child
MINOR_COORDINATION = "150565-1230\n"  # samordningsnummer (day + 60), born 2015


@pytest_asyncio.fixture
async def cli(gateway: RunningGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("STAFETT_PASSPHRASE", "cli test passphrase")
    monkeypatch.setenv("STAFETT_KDF_COST", "test")
    for name in ("STAFETT_HOME", "STAFETT_LANG", "STAFETT_GATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)
    return await provision(gateway, tmp_path / "cli")


def _record_args(*more: str) -> list[str]:
    return [
        "--json",
        "consent",
        "record",
        "--pnr-stdin",
        "--pair",
        "sav:so-nordost",
        "--category",
        "case_transfer",
        "--purpose",
        "transfer_to_district",
        "--days",
        "90",
        *more,
    ]


def _oral() -> list[str]:
    return _record_args("--form", "oral", "--witness", WITNESS, "--note", NOTE)


async def _gateway_text(gateway: RunningGateway, tmp_path: Path) -> str:
    """Every row of every gateway table as text, and on SQLite the raw database files
    (free pages and the WAL included)."""
    parts: list[str] = []
    async with gateway.app[SESSIONMAKER]() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                parts.append(repr(tuple(row)))
    parts.extend(_sqlite_files(tmp_path))
    return "\n".join(parts)


def _sqlite_files(root: Path) -> list[str]:
    return [
        path.read_bytes().decode("utf-8", "replace")
        for path in root.rglob("*")
        if path.is_file() and ".sqlite3" in path.name
    ]


def _local_copy(path: Path) -> tuple[dict[str, str], int]:
    return json.loads(path.read_text()), path.stat().st_mode


@pytest.mark.asyncio
async def test_oral_free_text_stays_on_the_device(
    cli: Cli, gateway: RunningGateway, tmp_path: Path
) -> None:
    recorded = (await cli.run("sara", *_oral(), stdin=PNR)).json()
    consent_id = recorded["consent_id"]
    assert recorded["existing"] is False
    # The local copy: the text, its salt, and a hash that is the one the gateway holds.
    local, mode = _local_copy(Path(recorded["free_text_file"]))
    assert (local["witness"], local["note"]) == (WITNESS, NOTE)
    assert mode & 0o077 == 0
    shown = (await cli.gw.client("sav/bo/1").get(f"/v1/consents/{consent_id}")).json()
    assert FreeText.from_json(local).matches(shown["record"]["free_text_hash"])
    assert "witness" not in shown["record"]
    assert "note" not in shown["record"]
    # Nothing of the text in any table (nor, on SQLite, anywhere in the files).
    held = await _gateway_text(gateway, tmp_path)
    assert consent_id in held  # the scan does see what is stored
    for fragment in ("Wilma", "Qvarnstrom", "receptionen", "Ubbe"):
        assert fragment not in held


@pytest.mark.asyncio
@pytest.mark.parametrize("number", [MINOR_PNR, MINOR_COORDINATION], ids=["pnr", "coordination"])
async def test_a_minor_is_found_from_the_number(cli: Cli, tmp_path: Path, number: str) -> None:
    refused = await cli.run("sara", *_oral(), stdin=number, expect=2)
    assert "11" in refused.err  # the age, derived from the number (born 2015)
    form = tmp_path / "guardian.pdf"
    form.write_bytes(b"vardnadshavarens blankett")
    recorded = (
        await cli.run("sara", *_oral(), "--guardian-evidence", str(form), stdin=number)
    ).json()
    shown = (await cli.gw.client("sav/bo/1").get(f"/v1/consents/{recorded['consent_id']}")).json()
    assert shown["record"]["minor"] is True
    # An adult (a "+" number: over 100) needs no guardian and is not a minor.
    adult = (await cli.run("sara", *_oral(), stdin="121212+1212\n")).json()
    shown = (await cli.gw.client("sav/bo/1").get(f"/v1/consents/{adult['consent_id']}")).json()
    assert shown["record"]["minor"] is False


@pytest.mark.asyncio
async def test_a_repeat_is_answered_with_the_existing_consent(cli: Cli) -> None:
    first = (await cli.run("sara", *_oral(), stdin=PNR)).json()
    again = await cli.run("sara", *_oral(), stdin=PNR)
    assert again.json()["consent_id"] == first["consent_id"]
    assert again.json()["existing"] is True
    assert first["consent_id"] in again.out
    listed = (await cli.run("sara", "--json", "consent", "list", "--pnr-stdin", stdin=PNR)).json()
    assert [c["consent_id"] for c in listed["consents"]] == [first["consent_id"]]
    # A real renewal (ending later) is a consent of its own.
    longer = _oral()
    longer[longer.index("--days") + 1] = "200"
    renewed = (await cli.run("sara", *longer, stdin=PNR)).json()
    assert renewed["existing"] is False
    assert renewed["consent_id"] != first["consent_id"]


@pytest.mark.asyncio
async def test_consent_option_takes_an_id_and_still_asks_who(cli: Cli) -> None:
    consent_id = (await cli.run("sara", *_oral(), stdin=PNR)).json()["consent_id"]
    # A personnummer typed where the id goes: refused, not echoed, nothing sent.
    typed = "19121212-1212"
    refused = await cli.send("--consent", typed, expect=2)
    assert typed not in refused.err + refused.out
    assert "121212" not in refused.err + refused.out
    # The id of another person's consent: the number asked for does not match it.
    other = await cli.run(
        "sara",
        "--json",
        "send",
        "--pnr-stdin",
        "--to",
        "so-nordost",
        "--category",
        "case_transfer",
        "--purpose",
        "transfer_to_district",
        "--text-file",
        str(_text(cli)),
        "--consent",
        consent_id,
        stdin=MINOR_PNR,
        expect=1,
    )
    assert consent_id in other.err
    assert (await cli.run("nora", "--json", "inbox")).json()["messages"] == []
    # The right person: sent.
    sent = (await cli.send("--consent", consent_id)).json()
    assert sent["consent_id"] == consent_id


def _text(cli: Cli) -> Path:
    path = cli.root / "other.txt"
    path.write_text("Hej")
    return path


@pytest.mark.asyncio
async def test_withdrawal_is_confirmed_with_a_reason_code(cli: Cli) -> None:
    consent_id = (await cli.run("sara", *_oral(), stdin=PNR)).json()["consent_id"]
    withdraw = ["--json", "consent", "withdraw", consent_id]
    # Not at a terminal and no --yes: refused before anything is sent.
    await cli.run("sara", *withdraw, "--reason", "subject_withdrew", expect=2)
    # A reason that is not a code (free text would be case content): refused.
    await cli.run("sara", *withdraw, "--reason", "Hon angrade sig", "--yes", expect=2)
    listed = (await cli.run("sara", "--json", "consent", "list", "--pnr-stdin", stdin=PNR)).json()
    assert listed["consents"][0]["status"] == "active"
    done = (await cli.run("sara", *withdraw, "--reason", "subject_withdrew", "--yes")).json()
    assert done["status"] == "withdrawn"

"""``stafett admin audit-export`` + ``stafett-keys audit verify`` against a real gateway:
an untouched export verifies; an edited, dropped, inserted or reordered entry (and a
rewrite hidden under a freshly signed checkpoint, given remembered checkpoints) is
named in one line with a non-zero exit."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keys.protocol.auditlog import entry_hash
from tests.support.cli import Cli, Outcome, admin_dir, run_keys
from tests.support.gateway import rewrite_audit_entry_1

Export = dict[str, Any]


async def _export(cli: Cli, keys_dir: Path, name: str) -> Path:
    out = cli.root / name
    answer = await cli.run(
        "admin",
        "--gateway",
        str(cli.gw.url),
        "--json",
        "admin",
        "audit-export",
        "--keys-dir",
        str(keys_dir),
        "--out",
        str(out),
    )
    doc = answer.json()
    assert doc["entries"] == doc["checkpoint"]["size"] >= 5
    return out


async def _activity(cli: Cli) -> None:
    await cli.record_consent()
    await cli.send()


def _verify(cli: Cli, export: Path, *extra: str) -> Outcome:
    key = cli.gw.identity.verify_key.b64()
    return run_keys("audit", "verify", "--file", str(export), "--gateway-key", key, *extra)


def _failure(outcome: Outcome) -> str:
    assert outcome.status == 1, (outcome.out, outcome.err)
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1, outcome.err  # one line, never a traceback
    return lines[0]


def _edit(doc: Export) -> None:
    doc["entries"][2]["data"]["kid"] = "admin/mallory/1"


def _drop(doc: Export) -> None:
    del doc["entries"][2]


def _insert(doc: Export) -> None:
    entries = doc["entries"]
    forged = {
        "seq": 3,
        "prev_hash": entries[2]["hash"],
        "created": entries[2]["created"],
        "event": "directory_appended",
        "data": {"size": 99},
    }
    entries.insert(3, {**forged, "hash": entry_hash(forged)})


def _reorder(doc: Export) -> None:
    entries = doc["entries"]
    entries[2], entries[3] = entries[3], entries[2]


def _cut_tail(doc: Export) -> None:
    doc["entries"].pop()


def _append_tail(doc: Export) -> None:
    last = doc["entries"][-1]
    forged = {
        "seq": last["seq"] + 1,
        "prev_hash": last["hash"],
        "created": last["created"],
        "event": "directory_appended",
        "data": {"size": 1},
    }
    doc["entries"].append({**forged, "hash": entry_hash(forged)})


def _forge_checkpoint(doc: Export) -> None:
    doc["checkpoints"][0]["created"] += 1


CASES: dict[str, tuple[Callable[[Export], None], str]] = {
    "edited": (_edit, "audit trail tampered (edited): entry 2 was changed"),
    "dropped": (_drop, "audit trail tampered (dropped): entry 2 is missing"),
    "inserted": (_insert, "audit trail tampered (inserted): two entries claim seq 3"),
    "reordered": (_reorder, "audit trail tampered (reordered): entry 3 appears before entry 2"),
    "cut tail": (_cut_tail, "audit trail tampered (dropped): the chain ends at"),
    "unsigned tail": (
        _append_tail,
        "is after the newest signed checkpoint",
    ),
    "forged checkpoint": (_forge_checkpoint, "audit trail tampered (forged)"),
}


@pytest.mark.asyncio
async def test_export_verifies_untouched_and_names_each_kind_of_tampering(cli: Cli) -> None:
    await _activity(cli)
    keys_dir = await admin_dir(cli)
    export = await _export(cli, keys_dir, "audit.json")
    assert export.stat().st_mode & 0o777 == 0o600

    ok = _verify(cli, export, "--json")
    assert ok.status == 0, ok.err
    doc = json.loads(export.read_text())
    result = json.loads(ok.out)
    assert result["ok"] is True
    assert result["size"] == len(doc["entries"]) == doc["checkpoints"][0]["size"]
    assert "intact" in _verify(cli, export).out

    for name, (tamper, expected) in CASES.items():
        copy_path = cli.root / f"tampered-{name.replace(' ', '-')}.json"
        tampered = copy.deepcopy(doc)
        tamper(tampered)
        copy_path.write_text(json.dumps(tampered))
        line = _failure(_verify(cli, copy_path))
        assert expected in line, (name, line)
        assert line.startswith("stafett-keys: error: ")

    # A wrong gateway key: every checkpoint is then "forged" (it does not vouch).
    other = run_keys(
        "audit", "verify", "--file", str(export), "--gateway-key", cli.gw.admin_key.verify_key.b64()
    )
    assert "(forged)" in _failure(other)
    # The export never overwrites an earlier one (it is evidence).
    again = await cli.run(
        "admin",
        "--gateway",
        str(cli.gw.url),
        "admin",
        "audit-export",
        "--keys-dir",
        str(keys_dir),
        "--out",
        str(export),
        expect=1,
    )
    assert "finns redan" in again.err


@pytest.mark.asyncio
async def test_remembered_checkpoints_catch_a_rewrite_under_a_fresh_checkpoint(
    cli: Cli,
) -> None:
    await _activity(cli)
    keys_dir = await admin_dir(cli)
    known = cli.root / "known-checkpoints.json"
    first = await _export(cli, keys_dir, "first.json")
    ok = _verify(cli, first, "--known-checkpoints", str(known), "--json")
    assert ok.status == 0, ok.err
    assert json.loads(ok.out)["remembered"] == 1
    remembered = json.loads(known.read_text())["checkpoints"]
    assert remembered == json.loads(first.read_text())["checkpoints"]
    # Verifying the same export again remembers nothing new.
    again = _verify(cli, first, "--known-checkpoints", str(known), "--json")
    assert json.loads(again.out)["remembered"] == 0

    await rewrite_audit_entry_1(cli.gw)
    await cli.send()  # new entries: the gateway signs a fresh checkpoint over the forged head
    second = await _export(cli, keys_dir, "second.json")
    # Against its own (fresh, validly signed) checkpoint alone the rewrite passes ...
    assert _verify(cli, second).status == 0
    # ... the checkpoint remembered from the first audit catches it.
    before = known.read_bytes()
    line = _failure(_verify(cli, second, "--known-checkpoints", str(known)))
    assert "audit trail tampered (rewritten)" in line
    assert "(remembered)" in line
    assert known.read_bytes() == before  # nothing from a failed audit is remembered

    # A remembered checkpoint that is not the gateway's own is refused, not trusted.
    forged = json.loads(before)
    forged["checkpoints"][0]["size"] += 1
    known.write_text(json.dumps(forged))
    assert "(forged): a remembered checkpoint" in _failure(
        _verify(cli, first, "--known-checkpoints", str(known))
    )

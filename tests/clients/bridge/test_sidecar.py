"""The drop rules as pure functions over a folder and ``now``: complete, waiting, failed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from bridge_support import drop

from clients.bridge import sidecar
from clients.bridge.sidecar import DropFailed, DropWaits

CONSENT = "0f0f0f0f-0000-4000-8000-000000000000"
GRACE, STALE, MAX = 30.0, 600.0, 1 << 20


def _load(path: Path, now: float) -> sidecar.Drop:
    return sidecar.load(path, now=now, grace_s=GRACE, max_bytes=MAX)


def test_the_schema_is_valid_2020_12() -> None:
    schema = json.loads(
        (Path(sidecar.__file__).parents[2] / "schemas/bridge-sidecar.json").read_text()
    )
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_message_id_is_the_same_for_the_same_drop_and_device(tmp_path: Path) -> None:
    drop(tmp_path, "a", CONSENT)
    first = sidecar.message_id("so-nordost/bridge", _load(tmp_path / "a.stafett.json", 0))
    again = sidecar.message_id("so-nordost/bridge", _load(tmp_path / "a.stafett.json", 0))
    other_device = sidecar.message_id("so-nordost/other", _load(tmp_path / "a.stafett.json", 0))
    drop(tmp_path, "a", CONSENT, drop_id="2")
    other_drop = sidecar.message_id("so-nordost/bridge", _load(tmp_path / "a.stafett.json", 0))
    assert first == again
    assert len({first, other_device, other_drop}) == 3


def test_a_half_written_sidecar_waits_then_fails(tmp_path: Path) -> None:
    path = tmp_path / "x.stafett.json"
    path.write_text('{"v": 1, ')
    mtime = path.stat().st_mtime
    with pytest.raises(DropWaits):
        _load(path, mtime + GRACE - 1)
    with pytest.raises(DropFailed) as failed:
        _load(path, mtime + GRACE)
    assert failed.value.code == "sidecar_not_json"


def test_a_document_still_arriving_waits_then_fails_when_stale(tmp_path: Path) -> None:
    drop(tmp_path, "a", CONSENT, content=b"x" * 100, write_document=False)
    (tmp_path / "a.pdf").write_bytes(b"x" * 50)
    loaded = _load(tmp_path / "a.stafett.json", 0)
    t = (tmp_path / "a.stafett.json").stat().st_mtime
    with pytest.raises(DropWaits):
        sidecar.check_complete(loaded, now=t + 1, stale_s=STALE)
    with pytest.raises(DropFailed) as failed:
        sidecar.check_complete(loaded, now=t + STALE + 1, stale_s=STALE)
    assert failed.value.code == "document_mismatch"
    (tmp_path / "a.pdf").write_bytes(b"x" * 100)
    sidecar.check_complete(loaded, now=t + 1, stale_s=STALE)  # complete now


def test_same_size_other_bytes_waits_while_fresh_and_fails_when_left(tmp_path: Path) -> None:
    drop(tmp_path, "a", CONSENT, content=b"x" * 100, write_document=False)
    doc = tmp_path / "a.pdf"
    doc.write_bytes(b"\0" * 100)  # preallocated, not filled in yet
    loaded = _load(tmp_path / "a.stafett.json", 0)
    t = doc.stat().st_mtime
    with pytest.raises(DropWaits):
        sidecar.check_complete(loaded, now=t + 1, stale_s=STALE)
    os.utime(doc, (t - STALE - 5, t - STALE - 5))
    with pytest.raises(DropFailed):
        sidecar.check_complete(loaded, now=t + 1, stale_s=STALE)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"colour": "blue"}, "sidecar_invalid"),
        ({"consent_id": None}, "sidecar_invalid"),
        (
            {"documents": [{"name": "../etc/passwd", "size": 1, "sha256": "0" * 64}]},
            "sidecar_invalid",
        ),
        (
            {"documents": [{"name": "b.stafett.json", "size": 1, "sha256": "0" * 64}]},
            "sidecar_invalid",
        ),
        (
            {"documents": [{"name": "big.pdf", "size": MAX + 1, "sha256": "0" * 64}]},
            "document_too_large",
        ),
        (
            {"subject": {"personnummer": "19121212-1212", "subject_ref": "0" * 64}},
            "sidecar_invalid",
        ),
        # Passes the schema's pattern, but the bundle format refuses it (unprintable).
        (
            {"documents": [{"name": "a\u00a0b.pdf", "size": 1, "sha256": "0" * 64}]},
            "sidecar_invalid",
        ),
        ({"documents": [{"name": "a.pdf", "size": 1, "sha256": "0" * 64}] * 2}, "sidecar_invalid"),
    ],
)
def test_bad_sidecars_fail_at_once(tmp_path: Path, changes: dict[str, Any], code: str) -> None:
    drop(tmp_path, "a", CONSENT, **changes)
    with pytest.raises(DropFailed) as failed:
        _load(tmp_path / "a.stafett.json", 0)
    assert failed.value.code == code
    assert "19121212" not in (failed.value.detail or "")

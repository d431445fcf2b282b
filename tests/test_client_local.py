"""``clients.local``: the device-side code the CLI and the web inbox share.

Neither tool imports the other's private helpers, and the shared module imports
neither tool (it sits beneath both). The free text of an oral consent is only
"kept" when it is the very text the record's hash names.
"""

from __future__ import annotations

import ast
from pathlib import Path

from clients.local import consents as local_consents
from clients.local.records import read_record, save_record

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> list[tuple[str, str, str]]:
    found = []
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found += [(path.name, node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                found += [(path.name, a.name, "") for a in node.names]
    return found


def test_the_shared_module_sits_beneath_both_tools() -> None:
    assert [
        i for i in _imports("clients.local") if i[1].startswith(("clients.cli", "clients.ui"))
    ] == []


def test_no_tool_imports_the_other_ones_private_helpers() -> None:
    crossing = [
        i
        for tool, other in (("clients.ui", "clients.cli"), ("clients.cli", "clients.ui"))
        for i in _imports(tool)
        if i[1].startswith(other) and (i[2].startswith("_") or i[1].split(".")[-1].startswith("_"))
    ]
    assert crossing == []


def test_kept_free_text_must_match_the_signed_hash(tmp_path: Path) -> None:
    fields, text = local_consents.oral(" Kollega K ", "I telefon") or ({}, None)
    assert text is not None
    assert fields["evidence_hash"] is None
    consent_id = "0b6f0f4e-3c39-4d7e-9d59-4f8a1d2f6b10"
    path = local_consents.keep_free_text(tmp_path, consent_id, text)
    assert path.stat().st_mode & 0o077 == 0
    kept = local_consents.kept_free_text(tmp_path, consent_id, fields["free_text_hash"])
    assert kept is not None
    assert kept.witness == "Kollega K"
    other = local_consents.oral("Kollega K", "I telefon")
    assert other is not None
    assert other[1].digest != text.digest
    assert local_consents.kept_free_text(tmp_path, consent_id, other[1].digest) is None
    local_consents.drop_free_text(tmp_path, consent_id)
    assert local_consents.kept_free_text(tmp_path, consent_id, fields["free_text_hash"]) is None


def test_oral_needs_both_fields_and_age_decides_minor() -> None:
    assert local_consents.oral("", "note") is None
    assert local_consents.oral("witness", "  ") is None
    assert local_consents.is_minor(17)
    assert not local_consents.is_minor(18)
    assert local_consents.is_minor(40, said_minor=True)


def test_records_refuse_ids_that_are_not_uuids(tmp_path: Path) -> None:
    assert read_record(tmp_path, "sent", "../keys") is None
    try:
        save_record(tmp_path, "sent", "../x", {})
    except ValueError:
        pass
    else:
        raise AssertionError("a path-like id named a file")
    assert not (tmp_path / "x.json").exists()

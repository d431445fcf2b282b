"""The controlled vocabulary: grounded terms, labels in both languages, strict loading."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from domain_factories import SCHEMAS

from keys.protocol.vocabulary import GROUPS, Vocabulary, load_vocabulary

RAW: dict[str, Any] = json.loads((SCHEMAS / "vocabulary.json").read_text("utf-8"))


def test_unit_kinds_are_exactly_the_directory_kinds() -> None:
    assert load_vocabulary().unit_kinds == {"sav", "district", "socialjour", "las", "other"}


def test_the_flows_of_the_domain_have_their_terms() -> None:
    v = load_vocabulary()
    assert {
        "threat_assessment",
        "case_transfer",
        "report_of_concern",
        "after_hours_matter",
        "placement_decision",
        "advice_request",
    } <= v.categories
    assert {
        "initial_threat_assessment",
        "transfer_to_district",
        "transfer_to_sav",
        "support_with_threat_assessment",
        "advice",
        "after_hours_handover",
        "forward_report_of_concern",
        "acute_placement_followup",
    } <= v.purposes
    assert "wrong_district" in v.rejection_reasons
    assert "subject_withdrew" in v.withdrawal_reasons


def test_every_term_has_swedish_and_english_labels() -> None:
    v = load_vocabulary()
    for group in GROUPS:
        for term in v.groups[group]:
            assert v.label(group, term).strip()
            assert v.label(group, term, "en").strip()
    assert v.label("categories", "threat_assessment") == "Hotbildsbedömning"
    assert v.label("categories", "threat_assessment", "en") == "Threat assessment"
    assert v.label("categories", "threat_assessment", "fi") == "Hotbildsbedömning"  # default


def _broken(path: list[str], value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(RAW)
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["v"], 2),
        (["default_language"], "de"),
        (["categories"], {}),
        (["purposes"], KeyError),
        (["categories", "Hot Bild"], {"sv": "x", "en": "x"}),
        (["categories", "threat_assessment", "en"], KeyError),
        (["categories", "threat_assessment", "sv"], " "),
        (["purposes", "advice"], "Rådgivning"),
    ],
)
def test_a_malformed_vocabulary_is_refused(path: list[str], value: Any) -> None:
    with pytest.raises(ValueError, match=r"."):
        Vocabulary.from_json(_broken(path, value))


def test_the_vocabulary_is_read_only() -> None:
    v = load_vocabulary()
    with pytest.raises(TypeError):
        v.groups["categories"]["anything"] = {"sv": "x", "en": "x"}  # type: ignore[index]

"""The controlled vocabulary (``schemas/vocabulary.json``) as a typed, immutable value.

Categories and purposes are codes from this list, never free text: free text would let
a consent say "everything about the case" (not specific) and would put case content
into metadata the gateway stores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

GROUPS = ("unit_kinds", "categories", "purposes", "withdrawal_reasons", "rejection_reasons")
_TERM = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Vocabulary:
    """Terms per group, each with labels per language (``sv`` is the default)."""

    groups: Mapping[str, Mapping[str, Labels]]
    default_language: str = "sv"

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(self.groups["categories"])

    @property
    def purposes(self) -> frozenset[str]:
        return frozenset(self.groups["purposes"])

    @property
    def unit_kinds(self) -> frozenset[str]:
        return frozenset(self.groups["unit_kinds"])

    @property
    def withdrawal_reasons(self) -> frozenset[str]:
        return frozenset(self.groups["withdrawal_reasons"])

    @property
    def rejection_reasons(self) -> frozenset[str]:
        return frozenset(self.groups["rejection_reasons"])

    def label(self, group: str, term: str, language: str | None = None) -> str:
        """The human label of ``term``; falls back to the default language."""
        labels = self.groups[group][term]
        return labels.get(language or self.default_language) or labels[self.default_language]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Vocabulary:
        """Build and check a vocabulary; raises ``ValueError`` on a malformed file."""
        if obj.get("v") != 1:
            raise ValueError("unsupported vocabulary version")
        languages = obj.get("languages")
        default = obj.get("default_language")
        if not isinstance(languages, list) or default not in languages:
            raise ValueError("vocabulary languages must include the default language")
        groups: dict[str, Mapping[str, Labels]] = {}
        for group in GROUPS:
            terms = obj.get(group)
            if not isinstance(terms, dict) or not terms:
                raise ValueError(f"vocabulary group {group} is missing or empty")
            checked: dict[str, Labels] = {}
            for term, labels in terms.items():
                if not _TERM.fullmatch(term):
                    raise ValueError(f"vocabulary term {term!r} is not snake_case")
                if not isinstance(labels, dict) or set(labels) != set(languages):
                    raise ValueError(f"vocabulary term {term!r} needs a label per language")
                if not all(isinstance(v, str) and v.strip() for v in labels.values()):
                    raise ValueError(f"vocabulary term {term!r} has an empty label")
                checked[term] = MappingProxyType(dict(labels))
            groups[group] = MappingProxyType(checked)
        return cls(MappingProxyType(groups), str(default))


# ``schemas`` sits next to ``gateway`` both in the source tree and in an installed wheel
# (both are top-level packages). A path is used rather than importlib.resources because
# the editable install can expose ``schemas`` as a namespace package, which
# ``resources.files`` cannot read from.
VOCABULARY_PATH = Path(__file__).resolve().parents[2] / "schemas" / "vocabulary.json"


@cache
def load_vocabulary(path: Path = VOCABULARY_PATH) -> Vocabulary:
    """The vocabulary shipped in ``schemas/`` (read once per path, then cached)."""
    return Vocabulary.from_json(json.loads(path.read_text("utf-8")))

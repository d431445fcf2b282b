"""The one error hierarchy: classes register themselves; one title table in two languages."""

from __future__ import annotations

import pytest

from keys.errors import REGISTRY, KeysError, StafettError
from keys.protocol import problems
from keys.protocol.refusals import PolicyError
from keys.protocol.titles import SWEDISH, title


def test_every_refusal_is_one_hierarchy() -> None:
    assert issubclass(problems.GatewayError, StafettError)
    assert issubclass(PolicyError, StafettError)
    assert issubclass(KeysError, StafettError)
    for code, cls in REGISTRY.items():
        assert cls.code == code
        assert 400 <= cls.status < 600
        assert cls.title


def test_every_registered_code_has_a_swedish_title() -> None:
    assert sorted(set(REGISTRY) - set(SWEDISH)) == []
    assert sorted(set(SWEDISH) - set(REGISTRY)) == []  # no title for a code that is gone


def test_a_new_class_registers_itself_and_renders() -> None:
    class LateRefusal(problems.GatewayError):
        code, status, title = "late_refusal_for_test", 409, "A refusal defined late"

    try:
        body = problems.problem_body("late_refusal_for_test")
        assert (body["status"], body["title"]) == (409, "A refusal defined late")
        rebuilt = problems.error_from_problem(body)
        assert type(rebuilt) is LateRefusal
    finally:
        del REGISTRY["late_refusal_for_test"]


def test_a_code_defined_twice_is_refused() -> None:
    with pytest.raises(RuntimeError, match="defined twice"):

        class Twin(StafettError):
            code = "replayed"


def test_titles_in_both_languages() -> None:
    assert title("replayed", "en") == "The request nonce was already used"
    assert title("replayed", "sv") == "Begärans engångsvärde har redan använts"
    assert title("no_such_code", "sv") == "Begäran nekades"


def test_key_error_status_belongs_to_its_code() -> None:
    # A key error naming its own code is a 400 unless it names a status: not inherited.
    class NarrowKeyError(REGISTRY["directory_invalid"]):  # type: ignore[misc,valid-type,name-defined]  # a class from the registry, known at run time
        code = "narrow_key_error_for_test"

    try:
        assert REGISTRY["directory_invalid"].status == 422
        assert NarrowKeyError.status == 400
    finally:
        del REGISTRY["narrow_key_error_for_test"]

"""Escalation selection and targets; consent-ending reminders. Pure, literal clocks."""

from __future__ import annotations

import pytest

from keys.domain.escalation import (
    DeviceFlags,
    DueMessage,
    Notice,
    due_for_escalation,
    escalation_for,
)
from keys.domain.reminders import DAY_S, ConsentTerm, consents_to_remind

NOW = 1_800_000_000


def msg(message_id: str = "m1", **changes: object) -> DueMessage:
    fields: dict[str, object] = {
        "message_id": message_id,
        "sender_kid": "socialjour/eva/2",
        "sender_unit": "socialjour",
        "recipient_unit": "so-nordost",
        "state": "accepted",
        "due": NOW - 60,
        "recipient_kids": ("so-nordost/anna/1", "so-nordost/bertil/3"),
    }
    fields.update(changes)
    return DueMessage(**fields)  # type: ignore[arg-type]


def test_selects_pending_overdue_not_yet_escalated() -> None:
    messages = [
        msg("late-accepted"),
        msg("late-delivered", state="delivered", due=NOW - 3600),
        msg("exactly-due", due=NOW),  # inclusive, like expiry
        msg("not-yet", due=NOW + 1),
        msg("no-deadline", due=None),
        msg("already", escalated_at=NOW - 10),
        *(msg(f"done-{s}", state=s) for s in ("handed_over", "rejected", "expired")),
        *(msg(f"done-{s}", state=s) for s in ("withdrawn", "recalled")),
    ]
    selected = due_for_escalation(messages, NOW)
    assert [m.message_id for m in selected] == ["late-delivered", "late-accepted", "exactly-due"]


def test_escalating_twice_is_impossible_once_marked() -> None:
    first = due_for_escalation([msg()], NOW)
    assert len(first) == 1
    marked = msg(escalated_at=NOW)
    assert due_for_escalation([marked], NOW + 86_400) == []


def test_targets_sender_device_and_recipient_contacts() -> None:
    recipients = [
        ("so-nordost/anna", False, False),
        DeviceFlags("so-nordost/mottagning", True, False),
        ("so-nordost/lost-laptop", True, True),  # revoked contact: never told
        ("so-nordost/chef", True, False),
        ("sav/bo", True, False),  # another unit's device in the list: ignored
        ("not a device", True, False),
    ]
    esc = escalation_for(msg(), recipients)
    assert esc.recipient_has_contact
    assert esc.notices == (
        Notice("socialjour", "socialjour/eva", "sender"),
        Notice("so-nordost", "so-nordost/chef", "recipient_contact"),
        Notice("so-nordost", "so-nordost/mottagning", "recipient_contact"),
    )
    assert esc.due == NOW - 60
    assert esc.message_id == "m1"


def test_no_contact_device_falls_back_to_the_addressed_devices() -> None:
    recipients = [
        ("so-nordost/anna", False, False),
        ("so-nordost/bertil", False, True),  # addressed but revoked since
        ("so-nordost/cecilia", False, False),  # not addressed: outside the case's circle
    ]
    esc = escalation_for(msg(), recipients)
    assert not esc.recipient_has_contact
    assert [n for n in esc.notices if n.unit == "so-nordost"] == [
        Notice("so-nordost", "so-nordost/anna", "recipient_addressed")
    ]


def test_revoked_sender_device_falls_back_to_sender_unit_contacts() -> None:
    senders = [
        ("socialjour/eva", False, True),
        ("socialjour/jour-kontakt", True, False),
        ("socialjour/other", False, False),
    ]
    esc = escalation_for(msg(), [("so-nordost/chef", True, False)], senders)
    assert esc.notices[0] == Notice("socialjour", "socialjour/jour-kontakt", "sender_contact")
    assert Notice("socialjour", "socialjour/eva", "sender") not in esc.notices


def test_sender_kid_of_another_unit_is_not_notified() -> None:
    esc = escalation_for(msg(sender_kid="sav/bo/1"), [("so-nordost/chef", True, False)])
    assert all(n.unit == "so-nordost" for n in esc.notices)


def test_message_without_due_is_refused() -> None:
    with pytest.raises(ValueError, match="never escalated"):
        escalation_for(msg(due=None), [])


# --- reminders -----------------------------------------------------------------------------
def consent(cid: str, ends_in_days: float, **changes: object) -> ConsentTerm:
    fields: dict[str, object] = {
        "consent_id": cid,
        "recorded_by": "sav/bo/1",
        "valid_until": NOW + int(ends_in_days * DAY_S),
    }
    fields.update(changes)
    return ConsentTerm(**fields)  # type: ignore[arg-type]


def test_reminds_the_recording_unit_of_consents_ending_soon() -> None:
    consents = [
        consent("ends-in-13d", 13),
        consent("ends-in-14d", 14),  # exactly N days: included
        consent("ends-in-15d", 15),
        consent("ends-tomorrow", 1, recorded_by="so-nordost/anna/2"),
        consent("ended", -1),
        consent("ends-now", 0),  # valid_until == now: already over
        consent("withdrawn", 3, withdrawn_at=NOW - 5),
        consent("reminded", 3, reminded_at=NOW - DAY_S),
        consent("bad-recorder", 3, recorded_by="nonsense"),
    ]
    reminders = consents_to_remind(consents, NOW, days_before=14)
    assert [(r.consent_id, r.unit, r.device) for r in reminders] == [
        ("ends-tomorrow", "so-nordost", "so-nordost/anna"),
        ("ends-in-13d", "sav", "sav/bo"),
        ("ends-in-14d", "sav", "sav/bo"),
    ]
    assert consents_to_remind(consents, NOW, days_before=0) == []
    assert len(consents_to_remind(consents, NOW, days_before=30)) == 4


def test_days_before_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        consents_to_remind([consent("c", 1)], NOW, days_before=-1)

"""Personnummer/samordningsnummer validation and the keyed subject reference."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys.crypto.subject import (
    PersonalIdentityNumber,
    age_on,
    generate_city_key,
    parse_personnummer,
    subject_reference,
)
from keys.errors import KeyInvalid, SubjectIdInvalid

TODAY = date(2025, 6, 1)
CITY_KEY = bytes(range(32))


def check_digit(nine: str) -> str:
    """Independent Luhn (from the right, as in the textbook) for YYMMDDNNN."""
    total = 0
    for position, char in enumerate(reversed(nine)):
        digit = int(char)
        if position % 2 == 0:  # rightmost of the nine is doubled (it sits next to C)
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return str((10 - total % 10) % 10)


def twelve(birth: date, serial: str = "987", *, coordination: bool = False) -> str:
    day = birth.day + (60 if coordination else 0)
    body = f"{birth.year:04d}{birth.month:02d}{day:02d}{serial}"
    return body + check_digit(body[2:])


def parse(text: str, today: date = TODAY) -> PersonalIdentityNumber:
    return parse_personnummer(text, today=today)


# --- the accepted spellings ---------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["811228-9874", "8112289874", "198112289874", "19811228-9874", "  811228-9874\n"]
)
def test_spellings_of_one_number_agree(text: str) -> None:
    pnr = parse(text)
    assert pnr.normalized == "198112289874"
    assert pnr.birth_date == date(1981, 12, 28)
    assert not pnr.is_coordination_number


def test_plus_means_a_hundred_years_earlier() -> None:
    pnr = parse("811228+9874")
    assert pnr.normalized == "188112289874"
    assert pnr.birth_date == date(1881, 12, 28)


def test_ten_digit_century_follows_today() -> None:
    born_2010 = twelve(date(2010, 1, 1))
    assert parse(f"{born_2010[2:8]}-{born_2010[8:]}").birth_date == date(2010, 1, 1)
    assert parse(f"{born_2010[2:8]}+{born_2010[8:]}").birth_date == date(1910, 1, 1)


def test_ten_digit_birthday_boundary() -> None:
    born_today = twelve(date(2025, 6, 1))
    assert parse(born_today[2:]).birth_date == date(2025, 6, 1)
    # one day later than today can only be 1925: the person is 99
    tomorrow_1925 = twelve(date(1925, 6, 2))
    assert parse(tomorrow_1925[2:]).birth_date == date(1925, 6, 2)
    # a 100th birthday today is written with "+"
    hundred = twelve(date(1925, 6, 1))
    assert parse(f"{hundred[2:8]}+{hundred[8:]}").birth_date == date(1925, 6, 1)
    assert parse(f"{hundred[2:8]}-{hundred[8:]}").birth_date == date(2025, 6, 1)


def test_samordningsnummer_day_plus_sixty() -> None:
    pnr = parse("701063-2391")
    assert pnr.is_coordination_number
    assert pnr.birth_date == date(1970, 10, 3)
    assert pnr.normalized == "197010632391"  # the +60 day stays in the normalised form


def test_samordningsnummer_and_personnummer_of_same_date_differ() -> None:
    plain = parse(twelve(date(1990, 5, 5)))
    coord = parse(twelve(date(1990, 5, 5), coordination=True))
    assert coord.is_coordination_number
    assert plain.birth_date == coord.birth_date
    assert subject_reference(plain, CITY_KEY) != subject_reference(coord, CITY_KEY)


# --- leap years -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("birth_year", "valid"), [(2000, True), (2024, True), (1900, False), (2023, False)]
)
def test_february_29(birth_year: int, valid: bool) -> None:
    body = f"{birth_year}0229123"
    number = body + check_digit(body[2:])
    if valid:
        assert parse(number).birth_date == date(birth_year, 2, 29)
    else:
        with pytest.raises(SubjectIdInvalid, match="calendar"):
            parse(number)


def test_february_29_ten_digits_century_decides() -> None:
    body = "000229123"
    ten = body + check_digit(body)
    assert parse(f"{ten[:6]}-{ten[6:]}").birth_date == date(2000, 2, 29)
    with pytest.raises(SubjectIdInvalid, match="calendar"):
        parse(f"{ten[:6]}+{ten[6:]}")  # 1900 was not a leap year


def test_samordningsnummer_february_29() -> None:
    assert parse(twelve(date(2024, 2, 29), coordination=True)).is_coordination_number
    body = "202302891234"[:11]  # 2023-02-(29+60): no such day
    with pytest.raises(SubjectIdInvalid):
        parse(body + check_digit(body[2:]))


# --- refusals -------------------------------------------------------------------------------
def test_future_dates_refused() -> None:
    with pytest.raises(SubjectIdInvalid, match="future"):
        parse(twelve(date(2025, 6, 2)))
    with pytest.raises(SubjectIdInvalid, match="future"):
        parse(twelve(date(2030, 1, 1), coordination=True))


def test_wrong_check_digit_refused() -> None:
    with pytest.raises(SubjectIdInvalid, match="check digit"):
        parse("811228-9875")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "81122A-9874",
        "811228-987X",
        "81122-9874",  # 9 digits
        "811228-98744",  # 11 digits
        "19811228987",  # 11 digits
        "1981122898744",  # 13 digits
        "811228 9874",  # inner space
        "811228--9874",
        "19811228+9874",  # "+" only exists in the 10-digit form
        "1981-1228-9874",
        "８１１２２８-９８７４",  # full-width digits
        "٨١١٢٢٨-٩٨٧٤",  # Arabic-Indic digits
    ],
)
def test_malformed_text_refused(text: str) -> None:
    with pytest.raises(SubjectIdInvalid):
        parse(text)


@pytest.mark.parametrize(
    "body",
    [
        "198113019",  # month 13
        "198100019",  # month 00
        "198101009",  # day 00
        "198101609",  # samordningsnummer "day 0"
        "198101929",  # day 92 - 60 = 32
        "198104319",  # 31 April
    ],
)
def test_impossible_dates_refused(body: str) -> None:
    number = body + "12"
    number += check_digit(number[2:])
    with pytest.raises(SubjectIdInvalid, match="calendar"):
        parse(number)


def test_error_messages_never_contain_the_number() -> None:
    for text in ["811228-9875", "20300101-1234", "19000229-1234", "811228 9874"]:
        with pytest.raises(SubjectIdInvalid) as info:
            parse(text)
        message = str(info.value)
        for part in ("811228", "9875", "9874", "20300101", "19000229", "1234"):
            assert part not in message
        assert info.value.__cause__ is None
        assert info.value.code == "personnummer_invalid"


def test_repr_hides_the_number_and_birth_date() -> None:
    pnr = parse("811228-9874")
    shown = repr(pnr) + str(pnr) + f"{pnr}" + repr([pnr])
    for part in ("811228", "9874", "1981", "12-28", "28"):
        assert part not in shown


# --- the reference --------------------------------------------------------------------------
def test_reference_is_keyed_blake2b_over_the_normalised_digits() -> None:
    ref = subject_reference(parse("811228-9874"), CITY_KEY)
    expected = hashlib.blake2b(
        b"198112289874", digest_size=32, key=CITY_KEY, person=b"stafett.subj"
    ).hexdigest()
    assert ref == expected
    assert len(ref) == 64
    assert ref == ref.lower()


def test_reference_depends_on_the_city_key() -> None:
    pnr = parse("811228-9874")
    assert subject_reference(pnr, CITY_KEY) != subject_reference(pnr, bytes(32))


@pytest.mark.parametrize("key", [b"", b"\x00" * 31, b"\x00" * 33])
def test_city_key_must_be_32_bytes(key: bytes) -> None:
    with pytest.raises(KeyInvalid):
        subject_reference(parse("811228-9874"), key)


def test_generate_city_key() -> None:
    a, b = generate_city_key(), generate_city_key()
    assert len(a) == 32
    assert a != b


# --- properties -----------------------------------------------------------------------------
@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[date, date, str, bool]:
    today = draw(st.dates(date(2000, 1, 1), date(2099, 12, 31)))
    birth = draw(st.dates(date(today.year - 150, 1, 1), today))
    serial = draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    coordination = draw(st.booleans())
    return today, birth, twelve(birth, serial, coordination=coordination), coordination


def _spellings(normalized: str, birth: date, today: date) -> list[str]:
    out = [normalized, f"{normalized[:8]}-{normalized[8:]}"]
    age_under_100 = (birth.year, birth.month, birth.day) > (
        today.year - 100,
        today.month,
        today.day,
    )
    if age_under_100:
        out += [normalized[2:], f"{normalized[2:8]}-{normalized[8:]}"]
    elif (birth.year, birth.month, birth.day) > (today.year - 200, today.month, today.day):
        out.append(f"{normalized[2:8]}+{normalized[8:]}")
    return out


@given(valid_numbers())
def test_valid_numbers_round_trip_in_every_spelling(case: tuple[date, date, str, bool]) -> None:
    today, birth, normalized, coordination = case
    refs = set()
    for text in _spellings(normalized, birth, today):
        pnr = parse_personnummer(text, today=today)
        assert pnr.normalized == normalized
        assert pnr.birth_date == birth
        assert pnr.is_coordination_number is coordination
        refs.add(subject_reference(pnr, CITY_KEY))
    assert len(refs) == 1


@given(valid_numbers(), st.integers(0, 11), st.integers(1, 9))
def test_any_single_digit_change_is_refused_or_another_person(
    case: tuple[date, date, str, bool], position: int, shift: int
) -> None:
    today, _birth, normalized, _ = case
    original = subject_reference(parse_personnummer(normalized, today=today), CITY_KEY)
    digit = (int(normalized[position]) + shift) % 10
    changed = normalized[:position] + str(digit) + normalized[position + 1 :]
    try:
        pnr = parse_personnummer(changed, today=today)
    except SubjectIdInvalid:
        return
    # Luhn catches every single-digit error in YYMMDDNNNC; only the century digits
    # (not covered by the check digit) can change into another valid number.
    assert position < 2
    assert subject_reference(pnr, CITY_KEY) != original


# --- age (decides whether a consent needs a guardian's) -----------------------------------
@pytest.mark.parametrize(
    ("birth", "today", "age"),
    [
        (date(2007, 6, 1), date(2025, 6, 1), 18),  # the 18th birthday: an adult
        (date(2007, 6, 2), date(2025, 6, 1), 17),  # the day before it: a minor
        (date(2008, 2, 29), date(2026, 2, 28), 17),  # a leap-day child in a common year
        (date(2008, 2, 29), date(2026, 3, 1), 18),
    ],
)
def test_age_on_a_day(birth: date, today: date, age: int) -> None:
    assert age_on(parse(twelve(birth), today), today) == age


def test_age_of_a_coordination_number_and_of_the_plus_separator() -> None:
    child = twelve(date(2015, 5, 5), coordination=True)  # day + 60
    assert age_on(parse(child[2:]), TODAY) == 10  # 10 digits: the century from today
    old = twelve(date(1912, 12, 12))
    assert age_on(parse(f"{old[2:8]}+{old[8:]}"), TODAY) == 112  # "+": over a hundred
    assert age_on(parse(f"{old[2:8]}-{old[8:]}"), TODAY) == 12  # "-": this century

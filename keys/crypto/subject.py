"""Subject references: a keyed pseudonym for the person a handover is about.

The gateway never sees a personnummer. A client validates the number the officer typed
and derives ``BLAKE2b-256(key=city_key, person=b"stafett.subj", normalized 12 digits)``.
The city key is held by the devices (distributed by the security admins), never by the
gateway, so the gateway cannot run a dictionary over the ~10^9 possible numbers to undo
the pseudonym (threat: a compromised gateway or database re-identifying defectors).

Validation matters as much as hashing: a mistyped number gives a *different* valid-
looking pseudonym, so a handover would silently attach to nobody's consent. The Luhn
digit, the calendar date and the century are therefore all checked, and anything
doubtful is refused with a message that never repeats the number (it is personal data
and ends up in logs and error dialogs).

Accepted spellings (surrounding white space is ignored, nothing else is):
``YYMMDD-NNNC``, ``YYMMDD+NNNC`` (the person has turned 100), ``YYMMDDNNNC``,
``YYYYMMDDNNNC`` and ``YYYYMMDD-NNNC``. A samordningsnummer (coordination number) is
written with the day plus 60.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import nacl.utils
from nacl.bindings import crypto_generichash_blake2b_salt_personal

from keys.errors import KeyInvalid, SubjectIdInvalid

CITY_KEY_BYTES = 32
_PERSON = b"stafett.subj"
_COORDINATION_OFFSET = 60

# [0-9] with re.ASCII, not \d: \d also matches Arabic-Indic or full-width digits, which
# would normalise to a different byte string than the same number typed in ASCII.
_TEN = re.compile(r"(?P<yy>[0-9]{2})(?P<mmdd>[0-9]{4})(?P<sep>[-+]?)(?P<tail>[0-9]{4})", re.ASCII)
_TWELVE = re.compile(r"(?P<yyyy>[0-9]{4})(?P<mmdd>[0-9]{4})-?(?P<tail>[0-9]{4})", re.ASCII)


@dataclass(frozen=True)
class PersonalIdentityNumber:
    """A validated personnummer or samordningsnummer.

    ``normalized`` is ``YYYYMMDDNNNC`` exactly as the number is assigned (for a
    samordningsnummer the day keeps its +60). Personal data: ``repr`` hides every field.
    """

    normalized: str = field(repr=False)
    is_coordination_number: bool = field(repr=False)
    birth_date: date = field(repr=False)

    def __repr__(self) -> str:
        # The number and the birth date identify the person; logs must not carry them.
        return "PersonalIdentityNumber(<redacted>)"

    __str__ = __repr__


def luhn_check_digit(nine_digits: str) -> int:
    """The Luhn check digit over ``YYMMDDNNN`` (weights 2, 1, 2, … from the left)."""
    total = 0
    for index, char in enumerate(nine_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def parse_personnummer(text: str, *, today: date) -> PersonalIdentityNumber:
    """Validate a personnummer/samordningsnummer; ``today`` decides the century.

    Raises :class:`SubjectIdInvalid` with a message that names the problem, never the
    number.
    """
    if not isinstance(text, str):
        raise SubjectIdInvalid("the identity number must be text")
    value = text.strip()
    ten = _TEN.fullmatch(value)
    twelve = _TWELVE.fullmatch(value) if ten is None else None
    if ten is not None:
        yy = int(ten["yy"])
        mmdd, tail = ten["mmdd"], ten["tail"]
        month, written_day = int(mmdd[:2]), int(mmdd[2:])
        day = _real_day(written_day)
        year = _century_for(yy, month, day, today)
        if ten["sep"] == "+":
            year -= 100  # "+" is written once the person has turned 100
    elif twelve is not None:
        year = int(twelve["yyyy"])
        mmdd, tail = twelve["mmdd"], twelve["tail"]
        month, written_day = int(mmdd[:2]), int(mmdd[2:])
        day = _real_day(written_day)
    else:
        raise SubjectIdInvalid(
            "not a personnummer: expected YYMMDD-NNNN, YYMMDD+NNNN, YYMMDDNNNN, "
            "YYYYMMDDNNNN or YYYYMMDD-NNNN with digits only"
        )
    try:
        birth_date = date(year, month, day)
    except ValueError:
        # `from None`: the chained ValueError would carry the date into tracebacks.
        raise SubjectIdInvalid("the date part is not a calendar date") from None
    if birth_date > today:
        raise SubjectIdInvalid("the date part lies in the future")
    normalized = f"{year:04d}{mmdd}{tail}"
    if luhn_check_digit(normalized[2:11]) != int(normalized[11]):
        raise SubjectIdInvalid("the check digit is wrong (mistyped number?)")
    return PersonalIdentityNumber(
        normalized=normalized,
        is_coordination_number=written_day > _COORDINATION_OFFSET,
        birth_date=birth_date,
    )


def _real_day(written_day: int) -> int:
    # A samordningsnummer writes the day of birth plus 60 (61-91). Day 60 ("day 0")
    # is refused like day 0 of a personnummer: the calendar check below rejects it.
    return written_day - _COORDINATION_OFFSET if written_day > _COORDINATION_OFFSET else written_day


def _century_for(yy: int, month: int, day: int, today: date) -> int:
    """The latest year ending in ``yy`` whose (month, day) is not after ``today``.

    Compared as (month, day) tuples so that an impossible date (Feb 30, or Feb 29 in a
    year that turns out not to be a leap year) is refused by the calendar check rather
    than nudged into another century.
    """
    year = today.year - (today.year - yy) % 100
    if year == today.year and (month, day) > (today.month, today.day):
        year -= 100
    return year


def age_on(pnr: PersonalIdentityNumber, today: date) -> int:
    """Whole years of age on ``today`` (from the validated number's birth date).

    A samordningsnummer's day already had its +60 removed and the century was decided
    by the separator or the 12-digit form when the number was parsed. Someone born on
    29 February turns a year older on 1 March in a common year.
    """
    born = pnr.birth_date
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def subject_reference(pnr: PersonalIdentityNumber, city_key: bytes) -> str:
    """The subject's pseudonym: 64 hex chars of BLAKE2b-256 keyed with the city key.

    Keyed (not a plain hash) because the space of personnummer is small enough to
    enumerate: without the key, anyone holding references could reverse them.
    """
    if not isinstance(city_key, bytes) or len(city_key) != CITY_KEY_BYTES:
        raise KeyInvalid("the city subject key must be 32 bytes")
    if not isinstance(pnr, PersonalIdentityNumber):
        raise SubjectIdInvalid("a validated PersonalIdentityNumber is required")
    digest = crypto_generichash_blake2b_salt_personal(
        pnr.normalized.encode("ascii"), digest_size=32, key=city_key, person=_PERSON
    )
    return bytes(digest).hex()


def generate_city_key() -> bytes:
    """A fresh 32-byte city-wide subject key (secret: for admins to distribute)."""
    return bytes(nacl.utils.random(CITY_KEY_BYTES))

"""The free text of an oral consent, which stays on the recording device.

An oral consent is documented by who witnessed it and a note on when and how it was
given (the same for a guardian's). That text is personal data and often case content,
so it never reaches the gateway: the device keeps it (with the unit's case file) and
the signed consent record carries only ``free_text_hash`` (``keys/protocol/consent_record.py``).
Showing the text and its salt later proves which text the record was signed over.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nacl.utils

from keys.crypto.canonical import NotCanonical, b64d, b64e, canonical_json
from keys.errors import ConsentRecordInvalid

FREE_TEXT_SALT_BYTES = 32
_FREE_TEXT_PERSON = b"stafett.freetext"  # BLAKE2b personalisation: at most 16 bytes
MAX_WITNESS_CHARS = 200
MAX_NOTE_CHARS = 2000


@dataclass(frozen=True)
class FreeText:
    """The free text of an oral consent (or a guardian's) and the salt of its hash.

    Kept on the recording device and in the case file, never sent: the record carries
    :attr:`digest` only. Personal data and case content: ``repr`` hides every field.
    """

    witness: str = field(repr=False)
    note: str = field(repr=False)
    salt: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.witness) > MAX_WITNESS_CHARS or len(self.note) > MAX_NOTE_CHARS:
            raise ConsentRecordInvalid("the witness or the note is too long")
        if not isinstance(self.salt, bytes) or len(self.salt) != FREE_TEXT_SALT_BYTES:
            raise ConsentRecordInvalid(f"the salt must be {FREE_TEXT_SALT_BYTES} bytes")

    @classmethod
    def new(cls, witness: str, note: str) -> FreeText:
        """The text with a fresh random salt."""
        return cls(witness, note, bytes(nacl.utils.random(FREE_TEXT_SALT_BYTES)))

    @property
    def digest(self) -> str:
        """``free_text_hash``: BLAKE2b-256 keyed with the salt over canonical JSON.

        Keyed with a random 32-byte salt, not a plain hash: a witness is one name from a
        short staff list and a note is often a stock phrase, so an unsalted hash of them
        could be reversed by trying candidates (threat: a gateway or a database reader
        recovering the text from the record). Canonical JSON of both fields makes the
        split between witness and note unambiguous.
        """
        text = canonical_json({"note": self.note, "witness": self.witness})
        return hashlib.blake2b(
            text, digest_size=32, key=self.salt, person=_FREE_TEXT_PERSON
        ).hexdigest()

    def to_json(self) -> dict[str, str]:
        """The local copy's form (the salt base64), for the device and the case file."""
        return {"witness": self.witness, "note": self.note, "salt": b64e(self.salt)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FreeText:
        try:
            return cls(
                str(obj["witness"]),
                str(obj["note"]),
                b64d(str(obj["salt"]), size=FREE_TEXT_SALT_BYTES),
            )
        except (KeyError, NotCanonical) as exc:
            raise ConsentRecordInvalid("not a consent free-text copy") from exc

    def matches(self, free_text_hash: str) -> bool:
        """Whether this text is the one a record's ``free_text_hash`` names."""
        return hmac.compare_digest(self.digest, free_text_hash)

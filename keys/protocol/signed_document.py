"""The shape every admin- or device-signed JSON document in ``keys/`` shares.

A document is its unsigned fields plus ``sig``; what is signed is the document's own
domain prefix followed by the canonical JSON of the unsigned fields. The prefix keeps a
signature for one kind of document from verifying as another (a checkpoint signature
replayed as a directory entry, say).
"""

from __future__ import annotations

from typing import Any, ClassVar

from keys.crypto.canonical import b64e, canonical_json


class SignedDocument:
    """Mixin for frozen dataclasses with a ``sig`` field and ``unsigned_json()``."""

    SIG_DOMAIN: ClassVar[bytes]
    sig: bytes

    def unsigned_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        obj = self.unsigned_json()
        obj["sig"] = b64e(self.sig)
        return obj

    def signed_bytes(self) -> bytes:
        return self.SIG_DOMAIN + canonical_json(self.unsigned_json())

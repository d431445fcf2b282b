"""What travels inside the envelope for a drop: a ``clients.cli.bundle`` bundle.

``message.txt`` says in Swedish and English that this came from a case system; each
document is a ``files/<name>`` member; ``files/meta.stafett.json`` carries what only the
recipient may see: the case reference, the personnummer (when the drop gave one) and
every document's size and SHA-256. A ``stafett open`` on an officer's computer shows
the same bundle as any other message (the meta file as one more attachment); the
sidecar schema forbids documents named ``*.stafett.json``, so the name cannot collide.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clients.bridge.sidecar import Drop
from clients.cli import bundle as cli_bundle
from keys.crypto import files

META_NAME = "meta.stafett.json"


def meta_of(drop: Drop) -> dict[str, Any]:
    fields = drop.fields
    meta: dict[str, Any] = {
        "v": 1,
        "kind": "stafett.bridge-drop",
        "documents": drop.documents,
        "case_reference": fields.get("case_reference"),
        "personnummer": fields["subject"].get("personnummer"),
        "drop_id": fields.get("drop_id"),
    }
    return meta


def pack(drop: Drop, dest: Path, spool: Path) -> None:
    """Write the bundle for ``drop`` to ``dest`` (0600, the caller removes it)."""
    meta_path = spool / META_NAME
    files.write_private(meta_path, json.dumps(meta_of(drop), ensure_ascii=False).encode())
    names = ", ".join(d["name"] for d in drop.documents)
    text = (
        f"Överlämnat från verksamhetssystemet via Stafett-bryggan. Dokument: {names}\n"
        f"Handed over from the case system through the Stafett bridge. Documents: {names}\n"
    )
    try:
        cli_bundle.pack(dest, text.encode(), [*drop.document_paths(), meta_path])
    finally:
        cli_bundle.remove(meta_path)

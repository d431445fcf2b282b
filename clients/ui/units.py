"""The units' names as a social worker says them: the name a security admin signed
into the verified directory's ``create_unit`` entry (the code when it has none). The
code is always shown next to the name (it is what the CLI and the consent form use).
"""

from __future__ import annotations

from keys.protocol.directory import Directory


def unit_names(directory: Directory) -> dict[str, str]:
    return {u: (rec.name or "").strip() or u for u, rec in directory.units.items()}

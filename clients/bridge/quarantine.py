"""Messages that cannot be verified or decrypted: ``quarantine/<message_id>/``.

A message addressed to the unit whose signature does not verify against the verified
directory, whose sender's directory has forked from ours, whose chunks fail their tags,
or which no key of this device opens, never reaches ``inbox/``: the case system must
not file what the bridge cannot vouch for. Instead ``quarantine/<message_id>/`` gets a
reason in Swedish and English (``reason.txt``) and for a machine (``reason.json``:
``code``, ``first_seen``, ``tries``, ``next_try``); nothing of the content is written.

**No receipt, not even a rejection.** A signed rejection would end the message at the
gateway and delete its content — the evidence a security admin needs to tell a forged
or damaged envelope from a directory that was merely behind — and the rejection reasons
are an officer's decisions (``wrong_district`` ...), not a machine's. The message stays
at the gateway until it expires (the sender then sees ``expired``), unless an officer
decides first (``stafett open`` for the diagnosis, ``stafett ack --reject``).

**Not downloaded every round.** The journal says ``quarantined`` with the next try: one
hour, doubling up to a day (a directory that was behind catches up; a forged envelope
stays forged, and a 1 GiB one is not fetched every five seconds). When a later try
verifies, the handover is written as usual and the quarantine folder removed.
"""

from __future__ import annotations

import shutil
from typing import Any

from clients.bridge import layout
from clients.bridge.layout import Layout
from keys.protocol.titles import title

FIRST_RETRY_S = 3600
MAX_RETRY_S = 86_400


def reason_text(code: str) -> str:
    return (
        "Orsak: Meddelandet till enheten kunde inte verifieras eller dekrypteras och har "
        "inte lagts i inkorgen. Inget kvitto är skickat. Kontakta säkerhetsadministratören; "
        "meddelandet ligger kvar på Stafett-servern tills det går ut.\n"
        "Reason: The message to the unit could not be verified or decrypted and was not "
        "put into the inbox. No receipt was sent. Contact the security administrator; the "
        "message stays at the Stafett gateway until it expires.\n"
        f"Kontroll / check: {title(code, 'sv')} / {title(code, 'en')}\n"
        f"Kod / code: {code}\n"
    )


def put(paths: Layout, mid: str, code: str, previous: dict[str, Any] | None, *, now: float) -> None:
    """Record (again) that ``mid`` is quarantined; the journal says when to try again."""
    tries = int(previous.get("tries", 0)) + 1 if previous else 1
    delay = min(MAX_RETRY_S, FIRST_RETRY_S << min(tries - 1, 8))
    first_seen = int(previous.get("first_seen", now)) if previous else int(now)
    reason = {
        "v": 1,
        "message_id": mid,
        "code": code,
        "first_seen": first_seen,
        "tries": tries,
        "next_try": int(now) + delay,
    }
    folder = paths.quarantine / mid
    folder.mkdir(exist_ok=True)
    layout.write_text(folder / "reason.txt", reason_text(code), private=False)
    layout.write_json(folder / "reason.json", reason, private=False, sync_dir=False)
    layout.fsync_tree(folder)
    layout.fsync_path(paths.quarantine)
    layout.write_json(paths.incoming / f"{mid}.json", {**reason, "state": "quarantined"})


def release(paths: Layout, mid: str) -> None:
    shutil.rmtree(paths.quarantine / mid, ignore_errors=True)

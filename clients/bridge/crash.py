"""Named crash points for the kill-and-restart tests (test mode only).

``STAFETT_BRIDGE_CRASH_AT=<point>`` makes the bridge SIGKILL itself at that point — the
same as a power cut there, with nothing flushed or cleaned up. It is honoured only
under the test-suite setting ``STAFETT_KDF_COST=test`` (which a production keystore
refuses to open with), so a stray variable on a real device does nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "send:sealed",  # envelope sealed, not journaled
    "send:journaled",  # journaled, not uploaded
    "send:uploaded",  # the gateway accepted it, the journal does not say so yet
    "send:filing",  # documents moved to sent/, the sidecar not yet
    "send:filed",  # filed, journal not updated
    "recv:fetched",  # decrypted into the spool, nothing in the inbox
    "recv:written",  # the handover folder written under its temp name, not journaled
    "recv:journaled",  # journaled, not renamed into the inbox
    "recv:renamed",  # in the inbox, no receipt signed
    "recv:acked",  # receipt posted, journal not updated
)


def crash_point(name: str) -> None:
    if os.environ.get("STAFETT_KDF_COST") != "test":
        return
    if os.environ.get("STAFETT_BRIDGE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)

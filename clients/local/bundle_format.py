"""The names inside a plaintext bundle, which the CLI, the web inbox and the bridge
all pack and unpack: ``message.txt`` (the text, UTF-8) and ``files/<name>``.

The sender controls the names, so only plain base names are accepted (no ``/``, no
``..``, no leading dot, no control characters). Threat: a sender (or a stolen sender
key) writing outside the output folder through path tricks (tar path traversal).
"""

from __future__ import annotations

TEXT_NAME = "message.txt"
FILES_DIR = "files"
MAX_NAME = 200


class BundleInvalid(Exception):
    """The decrypted content is not a well-formed bundle (nothing was written)."""

    code = "bundle_invalid"


def safe_name(name: str) -> bool:
    return (
        0 < len(name) <= MAX_NAME
        and "/" not in name
        and "\\" not in name
        and not name.startswith(".")
        and all(c.isprintable() for c in name)
    )

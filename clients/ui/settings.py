"""The local app's one frozen settings object, built once by ``launch`` (or a test)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_IDLE_S = 15 * 60  # the default: lock after 15 minutes without use


@dataclass(frozen=True)
class UiSettings:
    home: Path  # the CLI's state folder: keys.crypto.keystore, config.json, sent/, opened/
    gateway_url: str
    gateway_key_b64: str | None = None
    # Gateway keys trusted since the pin (announced by a trusted key, or pinned with
    # `stafett gateway-key pin`): clients.sdk.gateway_trust.
    gateway_keys_b64: tuple[str, ...] = ()
    idle_s: float = DEFAULT_IDLE_S
    language: str = "sv"
    # How often the idle lock is checked; tests shorten it with ``idle_s``.
    idle_check_s: float = 1.0
    # Where the decrypted bundle lives for the instant between decryption and reading it
    # into memory (a private 0700 folder inside the state folder by default).
    spool_dir: Path | None = None

    @property
    def private_dir(self) -> Path:
        return self.spool_dir or self.home / "ui-spool"

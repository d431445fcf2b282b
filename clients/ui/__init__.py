"""``stafett ui``: the officer's inbox in a browser, served from the officer's own computer.

A local aiohttp application on 127.0.0.1 that uses the same keystore and state folder
as the ``stafett`` CLI. Keys and decrypted content stay in this process: the gateway
only ever sees what the CLI would send. Built on the officer-side public APIs only
(``clients.sdk``, ``clients.errors``, ``keys``, the shared text table); it never
imports ``gateway``.

Modules: ``settings`` (one frozen settings object), ``guard`` (login, session cookie,
CSRF, Host/Origin, headers: the local app's threat model), ``vault`` (the unlocked
keystore and decrypted content, forgotten on lock), ``live`` (push stream → Server-Sent
Events), ``views_*`` (one page group each), ``app`` (wiring), ``launch`` (the CLI
subcommand).
"""

from clients.ui.app import create_app
from clients.ui.settings import UiSettings

__all__ = ["UiSettings", "create_app"]

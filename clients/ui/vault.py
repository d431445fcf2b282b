"""The unlocked device: keystore, SDK client and decrypted content, all forgotten on lock.

One ``Vault`` per app (one officer per computer). ``unlock`` opens the keystore with
the passphrase, verifies the key directory and starts the push stream; ``lock`` (the
"Lås" button or the idle timer) closes the client, drops the keystore, the passphrase
and every decrypted message, and empties the private folder. Threat: someone at an
unattended, unlocked computer reading cases or handing them over in the officer's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from clients.cli.state import Home
from clients.cli.texts import Texts
from clients.local.directory import replay_known
from clients.sdk import StafettClient
from clients.sdk.directory_sync import DirectorySync, KeyChange, OwnKeyNotice
from clients.sdk.gateway_trust import GatewayKeyChange, GatewayTrust
from clients.ui import device
from clients.ui.content import OpenedContent, read_bundle
from clients.ui.settings import UiSettings
from keys.crypto.keypairs import VerifyKey
from keys.crypto.keystore import Keystore
from keys.protocol.directory import Directory


class Locked(Exception):
    """The keystore is locked: the page sends the officer to the unlock page."""


class Vault:
    def __init__(self, settings: UiSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._keystore: Keystore | None = None
        self._passphrase: str | None = None
        self._client: StafettClient | None = None
        self._saved: tuple[object, ...] = ()
        self.opened: dict[str, OpenedContent] = {}
        # Key changes seen since the unlock (shown on the directory page and as a banner).
        self.changes: list[KeyChange] = []
        self.own: list[OwnKeyNotice] = []
        self.gateway_keys: list[GatewayKeyChange] = []  # accepted this session (announced)
        self.unlocked_at = 0.0
        self.on_lock: list[Callable[[], None]] = []
        self._lock = asyncio.Lock()

    @property
    def unlocked(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> StafettClient:
        if self._client is None:
            raise Locked()
        return self._client

    @property
    def private_dir(self) -> Path:
        return self.settings.private_dir

    async def unlock(self, passphrase: str) -> None:
        """Raises the ``keys`` error of a wrong passphrase or a damaged keystore."""
        async with self._lock:
            if self._client is not None:
                return
            home = self.settings.home
            keystore = await asyncio.to_thread(device.open_keystore, home, passphrase)
            pinned = [self.settings.gateway_key_b64, *self.settings.gateway_keys_b64]
            keys = [VerifyKey.from_b64(k) for k in pinned if k]
            gateway_key = GatewayTrust(keys) if keys else None
            device.fresh_private_dir(self.private_dir)
            client = StafettClient(
                self.settings.gateway_url,
                keystore,
                gateway_key=gateway_key,
                spool_dir=self.private_dir,
                retry_backoff_s=0.2,
                directory_sync=DirectorySync(keystore, gateway_key=gateway_key),
            )
            self._keystore, self._passphrase, self._client = keystore, passphrase, client
            self._remember_saved()
            self.unlocked_at = self.clock()
            try:
                await self._first_sync(client)
            except BaseException:
                await self._forget()
                raise

    async def _first_sync(self, client: StafettClient) -> None:
        # Rebuild the log up to the head this device verified last, so that key changes
        # since then are reported (threat: a substituted key arriving silently).
        await replay_known(client)
        await self.sync()

    async def sync(self) -> Directory:
        client = self.client
        result = await client.sync_directory()
        self.changes.extend(result.changes)
        self.own.extend(result.own)
        self.gateway_keys.extend(result.gateway_keys)
        for change in result.gateway_keys:
            # Saved like the CLI does (config.json), so the next session trusts it too.
            home = Home(self.settings.home, Texts(self.settings.language))
            await asyncio.to_thread(home.add_gateway_key, change.verify_key)
        await self._save_if_changed()
        return result.directory

    def _remember_saved(self) -> None:
        store = self._keystore
        if store is not None:
            self._saved = (store.known_checkpoint, tuple(sorted(store.keypairs)))

    async def _save_if_changed(self) -> None:
        """Persist a new verified head (the fork anchor) and shredded key versions."""
        store, passphrase = self._keystore, self._passphrase
        if store is None or passphrase is None:
            return
        if (store.known_checkpoint, tuple(sorted(store.keypairs))) != self._saved:
            await asyncio.to_thread(device.save, self.settings.home, store, passphrase)
            self._remember_saved()

    async def lock(self) -> None:
        async with self._lock:
            await self._forget()

    async def _forget(self) -> None:
        client = self._client
        self._client = None
        self._keystore = None
        self._passphrase = None
        for content in self.opened.values():
            content.forget()
        self.opened.clear()
        self.changes.clear()
        self.own.clear()
        device.remove_private_dir(self.private_dir)
        for callback in list(self.on_lock):
            callback()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    # --- reading ----------------------------------------------------------------------
    async def open_message(self, message_id: str) -> OpenedContent:
        """Verify and decrypt in this process; the plaintext is read into memory and
        its temp file deleted before this returns (also on failure)."""
        if message_id in self.opened:
            return self.opened[message_id]
        client = self.client
        home = self.settings.home
        previous = device.record(home, "opened", message_id)
        previous_hh = previous.get("header_hash") if previous else None
        await self.sync()
        dest = self.private_dir / f"{uuid.uuid4().hex}.bundle"
        try:
            opened = await client.fetch(
                message_id,
                dest,
                opened_before=previous_hh if isinstance(previous_hh, str) else None,
                # Opening again after a lock is deliberate; the SDK still insists it is
                # the very same envelope (threat: a gateway replaying an old one).
                reopen=previous is not None,
            )
            text, files = await asyncio.to_thread(read_bundle, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()
        header = opened.header
        content = OpenedContent(
            message_id=message_id,
            sender=opened.sender,
            sender_fingerprint=opened.sender_fingerprint,
            category=header.category,
            purpose=header.purpose,
            consent_id=header.consent_id,
            header_hash=opened.header_hash,
            expires=header.expires,
            in_reply_to=header.in_reply_to,
            reopened=previous is not None,
            text=text,
            files=files,
        )
        now = int(self.clock())
        saved = {
            **(previous or {}),
            "message_id": message_id,
            "header_hash": opened.header_hash,
            "path": "",  # nothing on disk: the web app keeps content in memory
            "sender": opened.sender,
            "expires": header.expires,
        }
        saved.setdefault("opened_at", now)
        if previous is not None:
            saved["reopened_at"] = now
        device.save_record(home, "opened", message_id, saved)
        self.opened[message_id] = content
        return content

    async def hand_over(self, message_id: str, status: str, reason: str | None) -> None:
        """Sign the receipt (accepted or rejected), then forget the content."""
        record = device.record(self.settings.home, "opened", message_id)
        content = self.opened.get(message_id)
        header_hash = content.header_hash if content else None
        if header_hash is None and record is not None:
            header_hash = str(record.get("header_hash") or "") or None
        await self.client.ack(message_id, status, reason, header_hash=header_hash)
        if record is not None:
            record.update({"acked_at": int(self.clock()), "ack": status})
            device.save_record(self.settings.home, "opened", message_id, record)
        if content is not None:
            content.forget()
            del self.opened[message_id]

"""Directory sync: fetch the key directory incrementally and trust only what verifies.

The gateway serves the log; it is not trusted with it. Each new entry is appended to a
``keys.protocol.directory.Directory`` built from the admin keys pinned in the keystore, which
checks the hash chain, the signing admin and the entry rules. Then:

- the gateway's checkpoint must agree with the log just verified (threat: a gateway
  serving entries that differ from the head it signs for others);
- the head this device saw last (``Keystore.known_checkpoint``) must be a prefix of the
  log (threat: a gateway showing this device a different history — a fork — or rolling
  it back to hide a revocation): ``DirectoryForked``;
- a gateway whose new entries do not continue the head this client already verified
  in memory is also a fork, not a transmission error.

The gateway's own key may rotate: a checkpoint signed by a key this client does not
trust yet is accepted only if a trusted key announced it (``clients.sdk.gateway_trust``,
the trust argument is there); accepted keys are returned in ``SyncResult.gateway_keys``.

Key changes of devices this client already knew (rotation, revocation, destroyed key,
raised minimum encryption version) are returned, so the CLI can warn loudly: a silent
key change is how a substituted key would look to an officer.

This device's own keys are handled apart (``OwnKeyNotice``): a ``destroy_key`` entry
for one of its versions makes the sync delete that private key from the keystore
(crypto-shredding on the device, Vault's transit model: once the directory says a
version is destroyed, no copy may survive anywhere); the caller saves the keystore. A
rotation or a raised minimum of its own key is reported, and a rotation to a key this
device does not hold is reported as what it may be: a substituted key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clients.errors import UnexpectedResponse
from clients.sdk.gateway_trust import GatewayKeyChange, GatewayTrust
from clients.sdk.transport import Transport
from keys.crypto.keypairs import VerifyKey
from keys.crypto.keystore import Keystore
from keys.errors import DirectoryBehind, DirectoryChainBroken, DirectoryForked, KeystoreError
from keys.protocol.checkpoint import Checkpoint
from keys.protocol.directory import DeviceRecord, Directory, DirectoryEntry

PAGE = 1000  # the gateway's maximum page size
_MAX_ROUNDS = 5  # the log grew between fetching entries and the checkpoint this often


@dataclass(frozen=True)
class KeyChange:
    """A key change of a device this client knew before the sync.

    ``kind`` is ``rotated`` (new key version), ``revoked`` (every version untrusted at
    once; ``new_fingerprint`` is None) or ``destroyed`` (an old version's private key
    was shredded). Fingerprints are of the signing (Ed25519) key; the encryption key's
    are given alongside, because that is the key a sender seals to.
    """

    device: str
    kind: str
    seq: int
    signer: str
    old_version: int
    new_version: int | None
    old_fingerprint: str
    new_fingerprint: str | None
    old_encryption_fingerprint: str
    new_encryption_fingerprint: str | None
    # ``min_raised`` only: the minimum encryption version before and after (senders
    # may no longer seal to versions below the new one).
    old_min_version: int | None = None
    new_min_version: int | None = None


@dataclass(frozen=True)
class OwnKeyNotice:
    """Something the directory says about this device's own keys.

    ``kind``:
    - ``rotated``: the directory lists ``version`` as this device's current key;
      ``held`` says whether this keystore holds exactly that key pair (if not, senders
      seal to a key this device cannot open: a substituted key, or a rotation finished
      elsewhere);
    - ``min_raised``: senders may no longer seal to versions below ``version``;
    - ``revoked``: every key of this device is revoked (nobody trusts it any more);
    - ``destroyed``: the private key of ``version`` is recorded as destroyed; ``held``
      says whether this keystore still holds it (it is deleted by the sync, so
      ``held`` is True only when that was refused: it is the newest version here).
    ``seq`` is the directory entry (None: found in the state, not in a new entry).
    """

    kind: str
    version: int
    seq: int | None
    held: bool
    signer: str | None = None


@dataclass(frozen=True)
class SyncResult:
    directory: Directory
    changes: list[KeyChange]
    fetched: int  # entries appended by this sync
    own: list[OwnKeyNotice] = field(default_factory=list)
    shredded: tuple[int, ...] = ()  # key versions deleted from the keystore by this sync
    # Gateway keys accepted by this sync, each announced by a trusted one (warn, save).
    gateway_keys: list[GatewayKeyChange] = field(default_factory=list)


class DirectorySync:
    """Holds the verified directory across syncs (entries are fetched after the last one)."""

    def __init__(
        self, keystore: Keystore, *, gateway_key: VerifyKey | GatewayTrust | None = None
    ) -> None:
        """``gateway_key``: the pinned gateway key (or the trusted set, which learns a
        rotated key announced by a trusted one: ``clients.sdk.gateway_trust``); None
        leaves checkpoints unverified."""
        self.keystore = keystore
        if isinstance(gateway_key, VerifyKey):
            gateway_key = GatewayTrust([gateway_key])
        self.gateway_trust = gateway_key
        self._gateway_keys: list[GatewayKeyChange] = []
        self.directory = Directory(dict(keystore.pinned_admins))

    async def sync(self, transport: Transport) -> SyncResult:
        changes: list[KeyChange] = []
        own: list[OwnKeyNotice] = []
        self._gateway_keys = []
        fetched = 0
        for _ in range(_MAX_ROUNDS):
            fetched += await self._fetch_new(transport, changes, own)
            checkpoint = await self._checkpoint(transport)
            try:
                self.directory.check_consistent(checkpoint.size, checkpoint.head)
            except DirectoryBehind:
                continue  # entries were appended meanwhile: fetch them and check again
            break
        else:
            raise UnexpectedResponse("the directory kept growing during sync; try again")
        self._check_known_checkpoint()
        # Remember the new head: the caller saves the keystore (it holds the passphrase).
        self.keystore.known_checkpoint = (self.directory.size, self.directory.head.hex())
        shredded = self._shred_destroyed(own)
        return SyncResult(self.directory, changes, fetched, own, shredded, self._gateway_keys)

    def _shred_destroyed(self, own: list[OwnKeyNotice]) -> tuple[int, ...]:
        """Delete every private key version the verified directory says is destroyed.

        Decided on the state, not only on new entries: a device that crashed before
        saving after an earlier sync still shreds on the next one.
        """
        record = self.directory.devices.get(self.keystore.owner)
        if record is None:
            return ()
        shredded: list[int] = []
        for version in sorted(self.keystore.keypairs):
            key = record.versions.get(version)
            if key is None or key.status != "destroyed":
                continue
            try:
                self.keystore.destroy_version(version)
            except KeystoreError:
                # The newest version held here: the keystore refuses to leave the
                # device without a key. Reported, never silently kept.
                _note_destroyed(own, version, held=True)
                continue
            shredded.append(version)
            _note_destroyed(own, version, held=False)
        return tuple(shredded)

    def _own_notice(self, entry: DirectoryEntry) -> OwnKeyNotice | None:
        record = self.directory.devices[self.keystore.owner]
        signer = str(entry.signer)
        if entry.type == "rotate_device":
            version = record.current_version
            pair = self.keystore.keypairs.get(version)
            published = record.versions[version]
            held = (
                pair is not None
                and pair.signing_key.verify_key == published.verify_key
                and pair.encryption_key.public_key == published.encryption_key
            )
            return OwnKeyNotice("rotated", version, entry.seq, held, signer)
        if entry.type == "set_min_encryption_version":
            return OwnKeyNotice(
                "min_raised", record.min_encryption_version, entry.seq, False, signer
            )
        if entry.type == "revoke_device":
            return OwnKeyNotice("revoked", record.current_version, entry.seq, True, signer)
        if entry.type == "destroy_key":
            version = int(entry.body["version"])
            held = version in self.keystore.keypairs
            return OwnKeyNotice("destroyed", version, entry.seq, held, signer)
        return None

    async def _fetch_new(
        self, transport: Transport, changes: list[KeyChange], own: list[OwnKeyNotice]
    ) -> int:
        # "Known" devices are those in the log up to the head this device verified last
        # time (the keystore's checkpoint), so a change is reported once, also by a new
        # process that rebuilds the directory from entry 0.
        baseline = self.keystore.known_checkpoint[0] if self.keystore.known_checkpoint else 0
        known: Mapping[str, DeviceRecord] | None = None
        if self.directory.size >= baseline:
            known = dict(self.directory.devices)
        fetched = 0
        while True:
            after = self.directory.size - 1
            answer = await transport.request(
                "GET", "/v1/directory/entries", query={"after": after, "limit": PAGE}
            )
            entries = _entries_of(answer)
            for raw in entries:
                entry = DirectoryEntry.from_json(raw)
                name = str(entry.body.get("device", ""))
                before = self.directory.devices.get(name)
                joining = entry.seq == self.directory.size and fetched == 0
                try:
                    self.directory.append(entry)
                except DirectoryChainBroken as exc:
                    if joining and self.directory.size > 0:
                        # The gateway's log does not continue what we verified before.
                        raise DirectoryForked(
                            "the gateway's directory does not continue the verified head"
                        ) from exc
                    raise
                fetched += 1
                if name == self.keystore.owner:
                    # This device's own key: not a colleague's key change to confirm,
                    # but something to act on here (see OwnKeyNotice).
                    notice = self._own_notice(entry) if entry.seq >= baseline else None
                    if notice is not None:
                        own.append(notice)
                elif known is not None and before is not None and name in known:
                    change = _change(entry, before, self.directory.devices[name])
                    if change is not None:
                        changes.append(change)
                if known is None and self.directory.size == baseline:
                    known = dict(self.directory.devices)
            if len(entries) < PAGE:
                return fetched

    async def _checkpoint(self, transport: Transport) -> Checkpoint:
        answer = await transport.request("GET", "/v1/directory/checkpoint")
        checkpoint = Checkpoint.from_json(answer)
        if self.gateway_trust is not None:
            # Signed by the gateway: a history it served can be held against it later.
            # A key new to this client must be announced by one it trusts.
            learned = await self.gateway_trust.verify_directory_checkpoint(checkpoint, transport)
            self._gateway_keys.extend(learned)
        return checkpoint

    def _check_known_checkpoint(self) -> None:
        known = self.keystore.known_checkpoint
        if known is None:
            return
        size, head = known
        try:
            self.directory.check_consistent(size, bytes.fromhex(head))
        except DirectoryBehind:
            # After a full sync a shorter log than we saw is a rollback: hidden entries.
            raise DirectoryForked(
                f"the gateway's directory has {self.directory.size} entries; "
                f"this device already verified {size}"
            ) from None


def _entries_of(answer: Any) -> list[Any]:
    if not isinstance(answer, dict) or not isinstance(answer.get("entries"), list):
        raise UnexpectedResponse("directory entries answer is malformed")
    entries: list[Any] = answer["entries"]
    return entries


def _note_destroyed(own: list[OwnKeyNotice], version: int, *, held: bool) -> None:
    """Record the outcome for ``version``: update the entry's notice, or add one."""
    for i, notice in enumerate(own):
        if notice.kind == "destroyed" and notice.version == version:
            own[i] = OwnKeyNotice("destroyed", version, notice.seq, held, notice.signer)
            return
    own.append(OwnKeyNotice("destroyed", version, None, held))


def _change(entry: DirectoryEntry, old: DeviceRecord, new: DeviceRecord) -> KeyChange | None:
    kinds = {
        "rotate_device": "rotated",
        "revoke_device": "revoked",
        "destroy_key": "destroyed",
        "set_min_encryption_version": "min_raised",
    }
    kind = kinds.get(entry.type)
    if kind is None:
        return None
    before = old.versions[old.current_version]
    after = None if kind == "revoked" else new.versions[new.current_version]
    if kind == "destroyed":
        version = int(entry.body["version"])
        before = old.versions[version]
        after = None
    minimums: tuple[int | None, int | None] = (None, None)
    if kind == "min_raised":
        minimums = (old.min_encryption_version, new.min_encryption_version)
    return KeyChange(
        device=str(new.device),
        kind=kind,
        seq=entry.seq,
        signer=str(entry.signer),
        old_version=before.version,
        new_version=None if after is None else after.version,
        old_fingerprint=before.verify_key.fingerprint(),
        new_fingerprint=None if after is None else after.verify_key.fingerprint(),
        old_encryption_fingerprint=before.encryption_key.fingerprint(),
        new_encryption_fingerprint=None if after is None else after.encryption_key.fingerprint(),
        old_min_version=minimums[0],
        new_min_version=minimums[1],
    )

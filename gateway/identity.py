"""The gateway's own identity: an Ed25519 key in a keystore file in ``data_dir``.

Several instances of one gateway share one identity (issue 12): ``stafett-gateway
init`` once, ``stafett-gateway identity export --out F`` there, then ``stafett-gateway
init --from F`` on every further instance (or every instance points
``gateway_key_file`` at one shared, read-only keystore). Threat defended: two instances
with keys of their own sign checkpoints of one audit chain with two keys, and a
verifier holding one of them calls the other's checkpoints forged — or, worse, an
auditor learns to shrug at "forged". The export is the same passphrase-sealed keystore
format (Argon2id + secretbox); no key material is ever printed or logged.

Rotation (``identity rotate``) adds a key version to the keystore; the newest signs.
The older versions' public keys stay in :attr:`GatewayIdentity.key_set`, so checkpoints
signed before the rotation still verify; see ``docs/ops`` and deploy/README.md.

It signs directory and audit checkpoints, so a client or auditor can hold the gateway
to what it showed them (threat: a gateway that later denies a history it served). The
keystore also holds the pinned root admin keys: the directory's trust anchor is sealed
and MAC-protected, so someone with write access to ``data_dir`` cannot swap in an admin
key of their own without the passphrase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.settings import Settings
from keys.crypto.keypairs import DeviceKeyPair, KeyId, SigningKey, VerifyKey
from keys.crypto.keystore import KdfCost, Keystore, load_keystore, save_keystore
from keys.errors import KeystoreError


class IdentityError(RuntimeError):
    """The gateway key cannot be created or opened (message is safe to print)."""


@dataclass(frozen=True)
class GatewayIdentity:
    kid: KeyId
    signing_key: SigningKey
    pinned_admins: Mapping[str, VerifyKey]
    # Every key version's public key (kid → key), the current one included: what a
    # verifier must pin to accept checkpoints signed before and after a rotation.
    key_set: Mapping[str, VerifyKey] = field(default_factory=dict)

    @property
    def verify_key(self) -> VerifyKey:
        return self.signing_key.verify_key

    def __repr__(self) -> str:
        return f"GatewayIdentity({self.kid}, {self.verify_key.fingerprint()})"


def _cost(settings: Settings) -> KdfCost:
    return KdfCost.TEST if settings.insecure_fast_kdf else KdfCost.MODERATE


def _min_cost(settings: Settings) -> KdfCost | None:
    # Threat: a keystore swapped for one with a trivial KDF, cheap to brute-force once
    # stolen. Test mode (insecure_fast_kdf) writes such files on purpose.
    return None if settings.insecure_fast_kdf else KdfCost.INTERACTIVE


def _passphrase(settings: Settings) -> str:
    if not settings.gateway_key_passphrase:
        raise IdentityError("set STAFETT_GATEWAY_KEY_PASSPHRASE (the gateway key's passphrase)")
    return settings.gateway_key_passphrase


def init_identity(settings: Settings, pinned_admins: Mapping[str, VerifyKey]) -> GatewayIdentity:
    """Create the gateway key (or add pins to an existing one). Idempotent for the key."""
    path = settings.gateway_key_path
    passphrase = _passphrase(settings)
    kid = KeyId.parse(settings.gateway_key_id)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        store = load_keystore(path, passphrase, min_cost=_min_cost(settings))
        changed = False
        for admin, key in pinned_admins.items():
            known = store.pinned_admins.get(admin)
            if known is not None and known != key:
                # Re-pinning a different key for the same admin would silently move the
                # root of trust: refuse, the operator must do that deliberately.
                raise IdentityError(f"{admin} is already pinned to a different key")
            if known is None:
                store.pinned_admins[admin] = key
                changed = True
        if changed:
            save_keystore(path, store, passphrase, cost=_cost(settings))
    else:
        pair = DeviceKeyPair.generate(kid)
        store = Keystore(
            owner=str(kid.device), keypairs={kid.version: pair}, pinned_admins=dict(pinned_admins)
        )
        save_keystore(path, store, passphrase, cost=_cost(settings))
    return _identity(store)


def load_identity(settings: Settings) -> GatewayIdentity:
    return _identity(_load(settings.gateway_key_path, settings))


def _load(path: Path, settings: Settings, passphrase: str | None = None) -> Keystore:
    if not path.exists():
        raise IdentityError(f"no gateway key at {path}: run `stafett-gateway init` first")
    try:
        return load_keystore(
            path, passphrase or _passphrase(settings), min_cost=_min_cost(settings)
        )
    except KeystoreError as exc:
        # The code only ("keystore_wrong_passphrase"): never the passphrase or the file.
        raise IdentityError(f"cannot open the gateway key {path.name}: {exc.code}") from None


def export_identity(
    settings: Settings, out: Path, passphrase: str | None = None
) -> GatewayIdentity:
    """Write the gateway keystore to ``out`` (mode 0600), sealed under ``passphrase``
    (default: the gateway key's own passphrase), for ``init --from`` on another instance.

    Refuses to overwrite: an export replacing some other file (a keystore of another
    gateway, say) would lose a key.
    """
    store = _load(settings.gateway_key_path, settings)
    if out.exists():
        raise IdentityError(f"{out} exists; choose a new file for the export")
    save_keystore(out, store, passphrase or _passphrase(settings), cost=_cost(settings))
    return _identity(store)


def import_identity(
    settings: Settings,
    source: Path,
    pinned_admins: Mapping[str, VerifyKey],
    passphrase: str | None = None,
) -> GatewayIdentity:
    """``init --from F``: take the gateway key from an export, sealed again under this
    instance's passphrase. Idempotent for the same key; refuses to replace a different
    gateway key (that would split the audit trail's signers, the bug this exists for).
    """
    store = _load(source, settings, passphrase)
    incoming = _identity(store)
    path = settings.gateway_key_path
    if path.exists():
        existing = _identity(_load(path, settings))
        if set(existing.key_set) - set(incoming.key_set) or any(
            incoming.key_set[kid] != key for kid, key in existing.key_set.items()
        ):
            raise IdentityError(
                f"{path} holds a different gateway key; move it away deliberately first"
            )
    for admin, key in pinned_admins.items():
        known = store.pinned_admins.get(admin)
        if known is not None and known != key:
            raise IdentityError(f"{admin} is already pinned to a different key")
        store.pinned_admins[admin] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    save_keystore(path, store, _passphrase(settings), cost=_cost(settings))
    return _identity(store)


def rotate_identity(settings: Settings) -> tuple[GatewayIdentity, GatewayIdentity, Keystore]:
    """Generate the next key version; returns (before, after, the keystore to save).

    Nothing is saved here: the caller first announces the new key in the audit chain
    under the old key (``gateway.cli_identity``), then saves with :func:`save_store`.
    """
    store = _load(settings.gateway_key_path, settings)
    before = _identity(store)
    kid = KeyId.parse(f"{before.kid.device}/{before.kid.version + 1}")
    store.add_version(DeviceKeyPair.generate(kid))
    return before, _identity(store), store


def save_store(settings: Settings, store: Keystore) -> None:
    save_keystore(settings.gateway_key_path, store, _passphrase(settings), cost=_cost(settings))


def _identity(store: Keystore) -> GatewayIdentity:
    pair = store.current()
    key_set = {str(p.kid): p.signing_key.verify_key for p in store.keypairs.values()}
    return GatewayIdentity(pair.kid, pair.signing_key, dict(store.pinned_admins), key_set)

"""The gateway's own identity: an Ed25519 key in a keystore file in ``data_dir``.

It signs directory and audit checkpoints, so a client or auditor can hold the gateway
to what it showed them (threat: a gateway that later denies a history it served). The
keystore also holds the pinned root admin keys: the directory's trust anchor is sealed
and MAC-protected, so someone with write access to ``data_dir`` cannot swap in an admin
key of their own without the passphrase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    path: Path = settings.gateway_key_path
    if not path.exists():
        raise IdentityError(f"no gateway key at {path}: run `stafett-gateway init` first")
    try:
        store = load_keystore(path, _passphrase(settings), min_cost=_min_cost(settings))
    except KeystoreError as exc:
        raise IdentityError(f"cannot open the gateway key: {exc.code}") from None
    return _identity(store)


def _identity(store: Keystore) -> GatewayIdentity:
    pair = store.current()
    return GatewayIdentity(pair.kid, pair.signing_key, dict(store.pinned_admins))

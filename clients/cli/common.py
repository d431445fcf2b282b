"""What every ``stafett`` command shares: the context, the personnummer, the vocabulary
and a directory sync that warns about changed keys across runs."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from clients.cli.render import Output
from clients.cli.state import CliFailure, Home
from clients.cli.texts import Texts
from clients.local.directory import replay_known
from clients.sdk import StafettClient
from clients.sdk.directory_sync import DirectorySync, KeyChange, OwnKeyNotice
from clients.sdk.gateway_trust import GatewayKeyChange, GatewayTrust
from keys.crypto.keypairs import VerifyKey
from keys.errors import SubjectIdInvalid
from keys.protocol.directory import Directory
from keys.protocol.vocabulary import Vocabulary, load_vocabulary


@dataclass
class Context:
    home: Home
    texts: Texts
    out: Output
    pnr_stdin: bool = False
    _gateway_trust: GatewayTrust | None = None

    @property
    def vocabulary(self) -> Vocabulary:
        return load_vocabulary()

    def label(self, group: str, term: str) -> str:
        vocab = self.vocabulary
        if term in vocab.groups.get(group, {}):
            return vocab.label(group, term, self.texts.language)
        return term

    def gateway_key(self) -> GatewayTrust | None:
        """The gateway keys this device trusts (the pin and the keys accepted since),
        one object per run so a key learned during it counts for the rest."""
        if self._gateway_trust is None:
            keys = [VerifyKey.from_b64(k) for k in self.home.gateway_keys_b64()]
            self._gateway_trust = GatewayTrust(keys) if keys else None
        return self._gateway_trust

    def client(self) -> StafettClient:
        keystore = self.home.keystore()
        gateway_key = self.gateway_key()
        return StafettClient(
            self.home.gateway_url(),
            keystore,
            gateway_key=gateway_key,
            spool_dir=self.home.root,
            retry_backoff_s=0.2,
            # One verified directory per run: ``sync_with_warnings`` fills it, the SDK's
            # later syncs (before send, fetch, receipts) only fetch what is new.
            directory_sync=DirectorySync(keystore, gateway_key=gateway_key),
        )

    # --- personnummer -------------------------------------------------------------------
    def subject_ref(self, client: StafettClient) -> str:
        """Ask for the personnummer, validate it and derive the pseudonym locally.

        Read from a prompt that does not echo, or one line of stdin (``--pnr-stdin``);
        never from argv (threat: shell history and ``ps`` showing who a case is about).
        The number is dropped as soon as the reference is derived.
        """
        return self.subject(client)[0]

    def subject(self, client: StafettClient) -> tuple[str, int]:
        """:meth:`subject_ref` and the person's age (from the number, never asked)."""
        keystore = self.home.keystore()
        if keystore.subject_key is None:
            raise CliFailure(self.texts("no_subject_key"))
        if self.pnr_stdin:
            text = sys.stdin.readline()
        elif sys.stdin.isatty():
            text = getpass.getpass(self.texts("pnr_prompt"))
        else:
            raise CliFailure(self.texts("pnr_needed"), status=2)
        try:
            return client.subject_ref_and_age(text)
        except SubjectIdInvalid as exc:
            raise CliFailure(self.texts("pnr_invalid", reason=self._pnr_reason(str(exc)))) from None

    def _pnr_reason(self, detail: str) -> str:
        for marker, key in (
            ("check digit", "pnr_check_digit"),
            ("calendar date", "pnr_date"),
            ("future", "pnr_future"),
        ):
            if marker in detail:
                return self.texts(key)
        return self.texts("pnr_format")

    # --- vocabulary -----------------------------------------------------------------------
    def check_terms(self, group: str, what: str, terms: Iterable[str]) -> None:
        allowed = sorted(self.vocabulary.groups[group])
        for term in terms:
            if term not in allowed:
                raise CliFailure(
                    self.texts(
                        "unknown_term", what=self.texts(what), term=term, allowed=", ".join(allowed)
                    ),
                    status=2,
                )

    def check_unit(self, directory: Directory, unit: str) -> None:
        if unit not in directory.units:
            known = ", ".join(sorted(directory.units)) or self.texts("none")
            raise CliFailure(self.texts("unknown_unit", unit=unit, known=known), status=2)


async def sync_with_warnings(ctx: Context, client: StafettClient) -> tuple[Directory, int]:
    """Verify the directory and warn loudly about key changes since the last run.

    The keystore's known checkpoint (MAC-protected) says how far this device verified
    before. The log up to there is rebuilt first, then the rest is synced through
    ``DirectorySync``, which reports rotations, revocations and destroyed keys of devices
    known at that point, with the admin entry that signed each. Threat: a substituted
    key arriving silently; an officer must see that a colleague's key changed, and who
    vouched for it. Returns the directory and the number of new entries.
    """
    await replay_known(client)
    before = client.directory_sync.directory.size
    result = await client.sync_directory()
    if result.shredded:
        # Crypto-shredding must not wait for the rest of the command to succeed: the
        # keystore on disk is rewritten without the destroyed versions at once.
        ctx.home.save_keystore()
    warn_gateway_keys(ctx, result.gateway_keys)
    for change in result.changes:
        ctx.out.warn(describe_change(ctx.texts, change))
    for notice in result.own:
        ctx.out.warn(describe_own(ctx.texts, client.kid.device, notice))
    return result.directory, result.directory.size - before


def warn_gateway_keys(ctx: Context, changes: Iterable[GatewayKeyChange]) -> None:
    """Save each gateway key accepted this run and say so loudly: a gateway key change
    the officer never hears of is what a substituted gateway would look like."""
    for change in changes:
        ctx.home.add_gateway_key(change.verify_key)
        ctx.out.warn(
            ctx.texts(
                "gateway_key_changed",
                kid=change.kid,
                fpr=change.fingerprint,
                previous=change.previous,
                seq=change.seq,
            )
        )


def describe_change(texts: Texts, change: KeyChange) -> str:
    key = {
        "rotated": "key_rotated",
        "revoked": "key_revoked",
        "min_raised": "key_min_raised",
    }.get(change.kind, "key_destroyed")
    return texts(
        key,
        device=change.device,
        old=change.old_version,
        new=change.new_version,
        old_fpr=change.old_fingerprint,
        new_fpr=change.new_fingerprint,
        old_min=change.old_min_version,
        new_min=change.new_min_version,
        seq=change.seq,
        signer=change.signer,
    )


def describe_own(texts: Texts, device: object, notice: OwnKeyNotice) -> str:
    """What the directory says about this device's own keys, as the officer must hear it."""
    key = {
        ("rotated", True): "own_rotated",
        ("rotated", False): "own_rotated_not_held",
        ("min_raised", False): "own_min_raised",
        ("revoked", True): "own_revoked",
        ("destroyed", False): "own_destroyed",
        ("destroyed", True): "own_destroyed_kept",
    }.get((notice.kind, notice.held), "own_other")
    return texts(
        key,
        device=device,
        version=notice.version,
        seq="?" if notice.seq is None else notice.seq,
        signer=notice.signer or "?",
    )

"""What a recipient checks on an envelope's header before its content counts as trusted.

The signature proves who sealed the envelope; it does not prove that the envelope is
new, nor that sender and recipient trusted the same key directory. Three checks close
that gap (``StafettClient.fetch`` runs them before decrypting, on the header it is
about to verify, and confirms the verified header is the one judged):

- **checkpoint**: the header names the directory the sender verified (size, head).
  It must be a prefix of, or equal to, the directory this device verified. Threat: a
  forking gateway that showed the sender one history (e.g. a substituted key for this
  unit) and this device another; each side alone sees a consistent log.
- **expiry**: the signed ``expires`` must not have passed. Threat: a gateway replaying
  an old, genuine envelope after it should have deleted it.
- **replay**: a message id this device opened before is refused unless the caller
  asks to re-open it, and then the envelope must be the very same one (same ``hH``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from clients.errors import AlreadyOpened, EnvelopeExpired, EnvelopeReplayed
from keys.errors import DirectoryBehind, DirectoryForked
from keys.protocol.directory import Directory
from keys.protocol.envelope import EnvelopeHeader

Resync = Callable[[], Awaitable[Directory]]


class SenderDirectoryForked(DirectoryForked):
    """The sender verified a directory that is not a prefix of this device's one.

    Same code as every fork (``directory_forked``): for the security admin it is one
    incident, a gateway showing different histories; the class says who noticed.
    """


def check_not_replayed(previous_header_hash: str | None, *, reopen: bool) -> None:
    """Refuse a message this device already opened, unless re-opening was asked for."""
    if previous_header_hash is not None and not reopen:
        raise AlreadyOpened()


def check_same_envelope(previous_header_hash: str | None, header_hash: str) -> None:
    """A re-open must find the envelope opened before, byte for byte (its ``hH``).

    An honest gateway answers a message id with one envelope only (sends are
    idempotent by id), so another envelope under an id seen before is a substitution.
    """
    if previous_header_hash is not None and not hmac.compare_digest(
        previous_header_hash.lower(), header_hash.lower()
    ):
        raise EnvelopeReplayed()


def check_not_expired(header: EnvelopeHeader, now: int) -> None:
    """Inclusive, as at the gateway: at ``expires`` the content is no longer handed out.

    No grace for clock skew: the sender is told "not handed over" at ``expires``, so
    content arriving after it must not be acted on as if it had been handed over.
    """
    if now >= header.expires:
        raise EnvelopeExpired(header.expires)


async def check_checkpoint(header: EnvelopeHeader, directory: Directory, resync: Resync) -> None:
    """The sender's directory (from the header) must agree with ours.

    Behind (the sender saw entries this device has not verified yet): sync once and
    check again. Still behind after a full sync means the gateway shows this device a
    shorter log than it showed the sender (hidden entries): a fork as well.
    """
    size, head = header.checkpoint_size, bytes.fromhex(header.checkpoint_head)
    try:
        directory.check_consistent(size, head)
        return
    except DirectoryBehind:
        pass
    except DirectoryForked as exc:
        raise SenderDirectoryForked(
            f"the sender verified another directory than this device ({exc})"
        ) from exc
    directory = await resync()
    try:
        directory.check_consistent(size, head)
    except DirectoryBehind:
        raise SenderDirectoryForked(
            f"the sender verified {size} directory entries; the gateway shows this "
            f"device {directory.size}"
        ) from None
    except DirectoryForked as exc:
        raise SenderDirectoryForked(
            f"the sender verified another directory than this device ({exc})"
        ) from exc

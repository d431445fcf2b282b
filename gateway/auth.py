"""Request authentication: RFC 9421 signatures by a device (or admin) key.

Order of checks, and why:
1. parse the signature headers (``signature_missing`` / ``signature_malformed``);
2. ``created`` within ±clock_skew (``signature_expired`` / ``signature_future``) — cheap
   and bounds how long nonces must be remembered;
3. the kid in the verified directory: an unknown kid is refused as ``signature_invalid``,
   exactly like a known kid with a bad signature (threat: an unauthenticated caller
   enumerating which device ids are enrolled, i.e. who works where); the distinction
   goes to the server log only;
4. the signature, with that key version's verify key (``signature_invalid``). This
   happens before the revoked/retired decision so that those refusals (and their audit
   entries) are only given for requests really signed with that key: a forged request
   naming a revoked kid is just ``signature_invalid``;
5. revoked device → ``device_revoked``; a version that is not the device's current one
   → ``key_retired`` (decision: after a rotation only the newest version signs requests;
   older versions stay usable for decryption only, as in Vault's transit model; a
   destroyed version is retired too);
6. per-device rate limit (after verification, so nobody can drain another device's
   bucket with forged requests);
7. the nonce is stored (unique per kid) → ``replayed``. Done after verification so
   unauthenticated junk never writes to the database. The handover requests (send,
   fetch, receipt) store it in their own unit of work instead, as its first statement
   (``gateway.services.request_unit``); whatever way such a request ends, its nonce is
   stored (``gateway.caller.PendingNonce``);
8. buffered bodies: Content-Digest checked against the bytes read. Streamed bodies
   (``application/vnd.stafett.envelope``) are checked by :func:`verified_body` at the
   end of the stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import partial

from aiohttp import web

from gateway.appkeys import (
    CALLER_KEY,
    CONTENT_DIGEST_KEY,
    DIRECTORY,
    IDENTITY,
    RATE_LIMITER,
    SESSIONMAKER,
    SETTINGS,
    STREAMED_KEY,
    VERIFIED_KID_KEY,
)
from gateway.caller import (
    Caller,
    PendingNonce,
    require_active_key,
    require_admin,
    require_device,
)
from gateway.db import handover_store
from gateway.db.nonce_store import NONCE_KEPT_S
from gateway.db.units import Tx
from gateway.ratelimit import RateLimiter
from gateway.transport import read_buffered, timed_chunks
from keys.crypto.keypairs import KeyId, SigningKey, VerifyKey
from keys.errors import DigestMismatch, KeyIdInvalid, SignatureInvalid
from keys.protocol.directory import Directory
from keys.protocol.directory_entry import ADMIN_UNIT
from keys.protocol.httpsig import (
    ContentDigester,
    RequestSignature,
    combine_field_lines,
    digest_matches,
    parse_request_signature,
    verify_request_signature,
)
from keys.protocol.problems import (
    BodyTooLarge,
    RateLimited,
    Replayed,
    SignatureExpired,
    SignatureFuture,
)

log = logging.getLogger("gateway.auth")

# Verified against when the kid is unknown, so that an unknown kid costs the same
# signature check as a known one (threat: telling enrolled kids apart by timing). Its
# private half is dropped at once: nothing can ever verify with it.
_DECOY_KEY = SigningKey.generate().verify_key

__all__ = [
    "STREAM_CONTENT_TYPE",
    "Caller",
    "RateLimiter",
    "auth_middleware",
    "caller_of",
    "require_admin",
    "require_device",
    "verified_body",
]

STREAM_CONTENT_TYPE = "application/vnd.stafett.envelope"
PROTECTED_PREFIX = "/v1/"
STREAM_CHUNK = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def caller_of(request: web.Request) -> Caller:
    if CALLER_KEY not in request:
        # Only reachable if a handler outside /v1/ asks: a programming error, a 500.
        raise RuntimeError("no authenticated caller on this request")
    return request[CALLER_KEY]


# What an empty gateway can take: a pinned root admin reading the (empty) directory and
# posting entry 0. Without it the first entry could only be stored by hand on the server.
_BOOTSTRAP_PREFIX = "/v1/directory/"


def _lookup(
    directory: Directory,
    kid: KeyId,
    *,
    pinned_admins: Mapping[str, VerifyKey],
    bootstrap: bool,
) -> tuple[VerifyKey, Callable[[], None]]:
    """The key to verify with, and the status check to run once it verified.

    ``bootstrap``: the request is for the directory endpoints. While it is empty, a
    pinned root admin key (sealed into the gateway's keystore at ``init``) authenticates;
    the entries themselves are still verified against the same pins by ``Directory``.
    Threat: anyone else seeding an empty gateway with their own trust root — refused,
    since only pinned keys are accepted, and only until the directory has entry 0.
    """
    if kid.unit == ADMIN_UNIT:
        key = directory.admins.get(str(kid))
        if key is None and bootstrap and directory.size == 0:
            key = pinned_admins.get(str(kid))
        if key is None:
            return _unknown(kid)
        return key, lambda: None
    record = directory.devices.get(str(kid.device))
    if record is None or kid.version not in record.versions:
        return _unknown(kid)
    version = record.versions[kid.version]

    return version.verify_key, lambda: require_active_key(directory, kid)


def _unknown(kid: KeyId) -> tuple[VerifyKey, Callable[[], None]]:
    """A kid the directory does not hold: verify against a decoy, answer like a bad
    signature. A kid is a device id, not personal data, so it may be logged (info)."""
    log.info("request refused: key id %s is not in the directory", kid)

    def refuse() -> None:  # only reached if the decoy ever verified; it cannot
        raise SignatureInvalid()

    return _DECOY_KEY, refuse


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(PROTECTED_PREFIX):
        return await handler(request)
    app = request.app
    settings = app[SETTINGS]
    headers = request.headers
    # Every field line, combined as RFC 9421 §2.1 says (never only the first one).
    sig = parse_request_signature(
        signature_input=headers.getall("Signature-Input", None),
        signature=headers.getall("Signature", None),
        method=request.method,
        path=request.rel_url.raw_path,
        query=request.rel_url.raw_query_string,
        content_digest=headers.getall("Content-Digest", None),
        field_lines=lambda name: headers.getall(name, []),
        authority=headers.get("Host"),
    )
    now = int(time.time())
    if sig.created < now - settings.clock_skew_s:
        raise SignatureExpired()
    if sig.created > now + settings.clock_skew_s:
        raise SignatureFuture()
    try:
        kid = KeyId.parse(sig.keyid)
    except KeyIdInvalid:
        # The same answer as an unknown kid; the value is caller text and is not logged.
        log.info("request refused: malformed key id")
        raise SignatureInvalid() from None

    # The verified directory this instance holds: no query per request. A kid it does
    # not know (enrolled or rotated through another instance) makes it catch up once.
    directories = app[DIRECTORY]
    directory = directories.directory
    bootstrap = request.path.startswith(_BOOTSTRAP_PREFIX)
    pinned = app[IDENTITY].pinned_admins
    try:
        _authenticate(request, sig, kid, directory, pinned, bootstrap)
    except SignatureInvalid:
        fresh = await directories.catch_up(app[SESSIONMAKER])
        if fresh.size == directory.size:
            raise
        directory = fresh
        _authenticate(request, sig, kid, directory, pinned, bootstrap)
    if not app[RATE_LIMITER].allow(str(kid.device), time.monotonic()):
        raise RateLimited()

    is_admin = kid.unit == ADMIN_UNIT
    # A minute short of what the purge keeps: instances' clocks may differ that much.
    decide_by = sig.created + settings.clock_skew_s + NONCE_KEPT_S - 60
    pending = PendingNonce(str(kid), sig.nonce, sig.created, decide_by)
    request[CALLER_KEY] = Caller(
        kid=kid,
        unit=kid.unit,
        device=None if is_admin else kid.device,
        is_admin=is_admin,
        nonce=pending,
    )
    defers = _stores_nonce_itself(request)
    if not defers:
        # The nonce in a transaction of its own, before the handler runs; the same unit
        # reads the directory's generation (the copy held here may be behind).
        stored_size = await app[SESSIONMAKER].units.write(partial(_claim_and_size, pending))
        pending.stored = True
        if stored_size != directory.size:
            directory = await directories.catch_up(app[SESSIONMAKER])
            _lookup(directory, kid, pinned_admins=pinned, bootstrap=bootstrap)[1]()
    digest_header = combine_field_lines(headers.getall("Content-Digest")) or ""
    if request.content_type == STREAM_CONTENT_TYPE:
        request[CONTENT_DIGEST_KEY] = digest_header
        request[STREAMED_KEY] = True
    else:
        # Bounded by client_max_size (max_json_bytes) and by time (gateway.transport).
        body = await read_buffered(request, settings)
        if not digest_matches(digest_header, body):
            raise DigestMismatch()
    response = await handler(request)
    if defers and not pending.stored:
        # Answered without a unit of work (an idempotent retry, say): the nonce is
        # stored before the answer leaves, or the answer is "replayed".
        await app[SESSIONMAKER].units.write(partial(_claim, pending))
        pending.stored = True
    return response


# The handover requests: their nonce goes into the unit of work that decides them
# (gateway.services.request_unit), saving a transaction and an fsync each.
_OWN_UNIT = frozenset(
    {
        ("PUT", "/v1/messages/{message_id}"),
        ("GET", "/v1/messages/{message_id}/envelope"),
        ("POST", "/v1/messages/{message_id}/receipt"),
    }
)


def _stores_nonce_itself(request: web.Request) -> bool:
    route = request.match_info.route.resource
    return route is not None and (request.method, route.canonical) in _OWN_UNIT


def _authenticate(
    request: web.Request,
    sig: RequestSignature,
    kid: KeyId,
    directory: Directory,
    pinned: Mapping[str, VerifyKey],
    bootstrap: bool,
) -> None:
    key, check_status = _lookup(directory, kid, pinned_admins=pinned, bootstrap=bootstrap)
    verify_request_signature(sig, key)
    request[VERIFIED_KID_KEY] = str(kid)
    check_status()


def _claim(pending: PendingNonce, tx: Tx) -> None:
    if not handover_store.claim_nonce(tx.conn, pending.keyid, pending.nonce, pending.created):
        raise Replayed()


def _claim_and_size(pending: PendingNonce, tx: Tx) -> int:
    _claim(pending, tx)
    return handover_store.directory_size(tx.conn)


async def verified_body(request: web.Request) -> AsyncIterator[bytes]:
    """Stream the request body in chunks, enforcing ``max_body_bytes`` and the digest.

    The digest can only be known at the end: consumers must treat everything yielded as
    untrusted until the iteration finished without an exception (write to a temp file,
    rename/commit afterwards). Raises ``body_too_large`` or ``digest_mismatch``.
    """
    limit = request.app[SETTINGS].max_body_bytes
    if not request.get(STREAMED_KEY, False):
        body = await request.read()  # already read and digest-checked by the middleware
        if len(body) > limit:
            raise BodyTooLarge()
        if body:
            yield body
        return
    digester = ContentDigester()
    total = 0
    async for chunk in timed_chunks(request.content, request.app[SETTINGS], STREAM_CHUNK):
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge()
        digester.update(chunk)
        yield chunk
    if not digest_matches(request[CONTENT_DIGEST_KEY], digester):
        raise DigestMismatch()

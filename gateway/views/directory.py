"""Key directory endpoints: incremental entries, admin appends, signed checkpoint."""

from __future__ import annotations

import json
import time

from aiohttp import web

from gateway.appkeys import DIRECTORY, GATEWAY_KEY_ANSWER, IDENTITY, SESSIONMAKER
from gateway.auth import caller_of, require_admin
from gateway.db import audit_store, audit_trail, directory_store
from gateway.db.audit_trail import checkpoint_json
from gateway.views.jsonbody import query_int, read_json

MAX_LIMIT = 1000


async def get_entries(request: web.Request) -> web.Response:
    after = query_int(request, "after", default=-1, minimum=-1, maximum=2**53 - 1)
    limit = query_int(request, "limit", default=MAX_LIMIT, minimum=1, maximum=MAX_LIMIT)
    async with request.app[SESSIONMAKER]() as session:
        rows = await directory_store.entries_from(session, after + 1, limit)
        size = await directory_store.stored_size(session)
    # Stored rows are the canonical JSON admins signed; served exactly as stored.
    return web.json_response({"entries": [json.loads(r) for r in rows], "size": size})


async def post_entries(request: web.Request) -> web.Response:
    caller = caller_of(request)
    require_admin(caller)
    body = await read_json(request, required={"entries"})
    directory = await request.app[DIRECTORY].append(
        request.app[SESSIONMAKER], body["entries"], caller=caller.kid, now=int(time.time())
    )
    return web.json_response({"size": directory.size, "head": directory.head.hex()}, status=201)


async def get_checkpoint(request: web.Request) -> web.Response:
    async with request.app[SESSIONMAKER]() as session:
        directory = await request.app[DIRECTORY].refresh(session)
    identity = request.app[IDENTITY]
    checkpoint = directory.checkpoint(identity.kid, identity.signing_key, int(time.time()))
    return web.json_response(checkpoint.to_json())


async def get_gateway_key(request: web.Request) -> web.Response:
    """The gateway's public key, to pin out of band (compare the fingerprint), and since
    key rotation the whole key set with each rotation's announcement.

    ``kid``/``verify_key``/``fingerprint`` stay the current key (the answer's first
    shape). ``keys`` lists every version (``current`` marks the signing one).
    ``rotations`` holds, per ``stafett-gateway identity rotate``, the audit entry
    ``gateway_key_rotated`` (new kid, previous kid, fingerprint) and the audit
    checkpoint over exactly that entry, signed by the previous key: what lets a client
    that trusts the old key accept the new one (``clients.sdk.gateway_trust``). Kids,
    public keys, fingerprints and hashes only.
    """
    cache = request.app[GATEWAY_KEY_ANSWER]
    if not cache:
        identity = request.app[IDENTITY]
        async with request.app[SESSIONMAKER]() as session:
            rotations = await audit_store.key_rotations(session)
        current = str(identity.kid)
        cache.update(
            {
                "kid": current,
                "verify_key": identity.verify_key.b64(),
                "fingerprint": identity.verify_key.fingerprint(),
                "keys": [
                    {
                        "kid": kid,
                        "verify_key": key.b64(),
                        "fingerprint": key.fingerprint(),
                        "current": kid == current,
                    }
                    for kid, key in sorted(
                        (identity.key_set or {current: identity.verify_key}).items()
                    )
                ],
                "rotations": [
                    {"entry": audit_trail.row_to_json(e), "checkpoint": checkpoint_json(c)}
                    for e, c in rotations
                    if json.loads(e.data_json).get("kid") in identity.key_set
                ],
            }
        )
    return web.json_response(cache)

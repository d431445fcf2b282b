"""Shared by the gateway benchmarks: a real gateway process, set up through its real APIs.

The gateway runs as the ``stafett-gateway`` CLI would run it (``init`` then ``serve``,
in a child process: ``clients.demo.gateway_process``, the demo's launcher), on SQLite in
a temp data dir, on a loopback port. Consents and enrolments come from the tests' one
set of factories (``tests.support.factories``). The bench process is the client:
requests are signed by the SDK's transport (``clients.sdk.transport.Transport``: RFC
9421 over method, path, query and Content-Digest, a fresh nonce each), the directory
is appended by a security admin
through ``POST /v1/directory/entries`` and consents are recorded through
``POST /v1/consents`` — nothing is written to the gateway's database behind its back
(``consent_scale`` adds its bulk filler consents before the gateway starts; it says so).

Not a benchmark itself (the leading underscore keeps it out of ``bench.run``).
"""

from __future__ import annotations

import asyncio
import io
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from clients.demo.gateway_process import GatewayProcess
from clients.sdk.transport import ENVELOPE_CONTENT_TYPE, Signer, Transport
from keys.crypto.keypairs import DeviceKeyPair, SigningKey
from keys.protocol.directory import Directory, DirectoryEntry, make_entry
from keys.protocol.envelope import EnvelopeHeader, seal
from keys.protocol.httpsig import content_digest
from tests.support.factories import (
    DAY,
    ROOT_ADMIN,
    SUBJECT,
    consent_draft,
    device,
    enrol_pair,
    signed_consent,
)

# What the benchmarks use (``from bench import _gateway as g``), re-exports included.
__all__ = [
    "CATEGORY",
    "DAY",
    "PASSPHRASE",
    "PURPOSE",
    "RECIPIENT_UNIT",
    "ROOT_ADMIN",
    "SENDER_UNIT",
    "SUBJECT",
    "UNLIMITED",
    "Deployment",
    "GatewayProcess",
    "Sealed",
    "consent_record",
    "deploy",
    "init_gateway",
    "percentile",
    "put_envelope",
    "record_consent",
    "seal_one",
    "share_identity",
    "start_gateway",
]

PASSPHRASE = "bench gateway passphrase (not a secret)"  # noqa: S105  # throwaway temp key
SENDER_UNIT = "so-nordost"
RECIPIENT_UNIT = "sav"
CATEGORY = "case_transfer"
PURPOSE = "transfer_to_sav"
# Lifted for the benches only: they measure throughput and latency, not the per-device
# token bucket (whose cost — one dict lookup — stays on the path).
UNLIMITED = {"rate_limit_per_s": "1000000", "rate_limit_burst": "1000000"}


def init_gateway(data_dir: Path, admin_key: SigningKey, **settings: str) -> Directory:
    """``stafett-gateway init --pin-admin`` and ``migrate``, then the genesis entry.

    Blocking (subprocesses and its own event loop): call it via ``asyncio.to_thread``.
    Returns the directory state the admin continues from.
    """
    gw = GatewayProcess(data_dir, PASSPHRASE, settings)
    gw.init({str(ROOT_ADMIN): admin_key.verify_key.b64()})
    gw.command("migrate")
    directory = Directory({str(ROOT_ADMIN): admin_key.verify_key})
    genesis = make_entry(
        directory,
        "add_admin",
        {"admin": str(ROOT_ADMIN), "verify_key": admin_key.verify_key.b64()},
        ROOT_ADMIN,
        admin_key,
        int(time.time()) - 3600,
    )
    directory.append(genesis)
    asyncio.run(_store_genesis(data_dir, admin_key, genesis, settings.get("database_url")))
    return directory


def share_identity(source: Path, target: Path, **settings: str) -> None:
    """A further instance of the same gateway: ``identity export`` on the first,
    ``init --from`` on the next (blocking; the real commands)."""
    export = source.parent / f"{target.name}.gateway-key"
    GatewayProcess(source, PASSPHRASE, settings).command("identity", "export", "--out", str(export))
    GatewayProcess(target, PASSPHRASE, settings).command("init", "--from", str(export))
    export.unlink()


async def _store_genesis(
    data_dir: Path, admin_key: SigningKey, genesis: DirectoryEntry, db_url: str | None = None
) -> None:
    # Entry 0 goes in through the gateway's own DirectoryService (verified like any
    # append), not over HTTP: the auth middleware only knows admins *from* the
    # directory, so before entry 0 the pinned root admin cannot sign a request
    # (reported to gateway-core as a bootstrap gap).
    from gateway.db.engine import make_sessionmaker, open_engine
    from gateway.services.directory import DirectoryService

    engine = open_engine(
        db_url or f"sqlite+aiosqlite:///{(data_dir / 'gateway.sqlite3').resolve()}"
    )
    try:
        service = DirectoryService({str(ROOT_ADMIN): admin_key.verify_key})
        await service.append(
            make_sessionmaker(engine), [genesis.to_json()], caller=ROOT_ADMIN, now=int(time.time())
        )
    finally:
        await engine.dispose()


async def start_gateway(
    data_dir: Path, admin_key: SigningKey, log: Path, **settings: str
) -> GatewayProcess:
    """``stafett-gateway serve`` in a child process; returns once /readyz answers 200."""
    gw = GatewayProcess(data_dir, PASSPHRASE, settings)
    await asyncio.to_thread(gw.start, log, migrate=False)
    return gw


@dataclass
class Deployment:
    """The directory and devices the bench set up on a running gateway."""

    gw: GatewayProcess
    admin_key: SigningKey
    http: aiohttp.ClientSession
    senders: list[DeviceKeyPair]
    recipients: list[DeviceKeyPair]
    directory: Directory
    consent_id: str = ""
    transports: dict[str, Transport] = field(default_factory=dict)

    def transport(self, pair: DeviceKeyPair | None = None) -> Transport:
        """The SDK transport signing as ``pair`` (the root admin when None)."""
        kid = str(pair.kid) if pair is not None else str(ROOT_ADMIN)
        if kid not in self.transports:
            key = pair.signing_key if pair is not None else self.admin_key
            self.transports[kid] = Transport(self.gw.url, Signer(kid, key), session=self.http)
        return self.transports[kid]


async def deploy(
    gw: GatewayProcess,
    admin_key: SigningKey,
    directory: Directory,
    n_pairs: int,
    http: aiohttp.ClientSession,
) -> Deployment:
    """Two units, ``n_pairs`` sender and recipient devices, and one consent, via the API.

    ``directory`` is the state :func:`init_gateway` returned (the genesis entry).
    """
    clock = int(time.time()) - 3000
    entries: list[DirectoryEntry] = []

    def add(type_: str, body: dict[str, Any]) -> None:
        nonlocal clock
        clock += 1
        entry = make_entry(directory, type_, body, ROOT_ADMIN, admin_key, clock)
        directory.append(entry)
        entries.append(entry)

    add("create_unit", {"unit": SENDER_UNIT, "kind": "district", "name": "SO Nordost"})
    add("create_unit", {"unit": RECIPIENT_UNIT, "kind": "sav", "name": "SAV"})
    senders = [device(f"{SENDER_UNIT}/s{i}/1") for i in range(n_pairs)]
    recipients = [device(f"{RECIPIENT_UNIT}/r{i}/1") for i in range(n_pairs)]
    for pair in senders + recipients:
        add("enrol_device", enrol_pair(pair))
    dep = Deployment(gw, admin_key, http, senders, recipients, directory)
    await dep.transport().request(
        "POST", "/v1/directory/entries", json_body={"entries": [e.to_json() for e in entries]}
    )
    dep.consent_id = await record_consent(dep, senders[0])
    return dep


def consent_record(recorder: DeviceKeyPair, consent_id: str | None = None) -> dict[str, Any]:
    """A signed, specific, written consent: so-nordost → sav, one subject, 90 days."""
    draft = consent_draft(
        now=int(time.time()),
        consent_id=consent_id or str(uuid.uuid4()),
        recorder=str(recorder.kid),
        between=[(SENDER_UNIT, RECIPIENT_UNIT)],
        categories=[CATEGORY],
        purposes=[PURPOSE],
        subject=SUBJECT,
    )
    return signed_consent(draft, recorder)


async def record_consent(dep: Deployment, recorder: DeviceKeyPair) -> str:
    record = consent_record(recorder)
    answer = await dep.transport(recorder).request("POST", "/v1/consents", json_body=record)
    if not isinstance(answer, dict):
        raise RuntimeError("unexpected answer to POST /v1/consents")
    return str(answer["consent_id"])


@dataclass(frozen=True)
class Sealed:
    """A pre-sealed envelope: sealing is not what these benchmarks measure."""

    message_id: str
    data: bytes
    digest: str  # Content-Digest, computed once (the SDK computes it while sealing)
    header_hash: bytes


def seal_one(
    dep: Deployment, sender: DeviceKeyPair, recipient: DeviceKeyPair, body: bytes
) -> Sealed:
    t = int(time.time())
    header = EnvelopeHeader(
        message_id=str(uuid.uuid4()),
        sender=sender.kid,
        recipient_unit=recipient.kid.unit,
        recipients=(recipient.kid,),
        consent_id=dep.consent_id,
        subject_ref=SUBJECT,
        category=CATEGORY,
        purpose=PURPOSE,
        created=t,
        expires=t + 7 * DAY,
        checkpoint_size=dep.directory.size,
        checkpoint_head=dep.directory.head.hex(),
        in_reply_to=None,
    )
    out = io.BytesIO()
    result = seal(header, io.BytesIO(body), [recipient.public()], sender, out)
    data = out.getvalue()
    return Sealed(header.message_id, data, content_digest(data), result.header_hash)


async def put_envelope(
    dep: Deployment, sender: DeviceKeyPair, item: Sealed, transport: Transport | None = None
) -> int:
    """PUT /v1/messages/{id} through the SDK transport (``transport``: another instance
    of the gateway); returns the status (2xx only)."""
    transport = transport or dep.transport(sender)
    url = transport.url(f"/v1/messages/{item.message_id}")
    headers = {
        "Content-Type": ENVELOPE_CONTENT_TYPE,
        **transport.sign("PUT", url, item.digest),
    }
    resp = await transport.send("PUT", url, headers=headers, body=item.data)
    status = int(resp.status)
    if status not in (200, 201):
        raise RuntimeError(f"send refused: HTTP {status} {resp.body[:200]!r}")
    return status


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]

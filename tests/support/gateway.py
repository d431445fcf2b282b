"""The one in-process gateway launcher: a real app on 127.0.0.1:0 and a signing client.

Used through the fixtures (``tests.support.fixtures``: ``start``, ``gateway``, ``gw``)
by the gateway, SDK, CLI, UI and bridge tests. A gateway in a child process, started
with the shipped ``stafett-gateway`` CLI, is ``clients.demo.gateway_process`` (the demo,
``bench/`` and the crash tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import text
from yarl import URL

from gateway.app import create_app
from gateway.appkeys import DIRECTORY, SESSIONMAKER
from gateway.db.engine import SessionMaker, make_sessionmaker, open_engine
from gateway.identity import GatewayIdentity, init_identity
from gateway.migrations import migrate
from gateway.settings import Settings
from keys.crypto.keypairs import DeviceKeyPair, KeyId, SigningKey
from keys.protocol.auditlog import entry_hash
from keys.protocol.directory import Directory, DirectoryEntry, make_entry
from keys.protocol.httpsig import content_digest, new_nonce, sign_request
from tests.support.factories import DAY, ROOT_ADMIN, enrol_pair, unit_name

PASSPHRASE = "test gateway passphrase"
DEVICES = ("so-nordost/anna/1", "so-nordost/bertil/1", "sav/bo/1")
UNITS = {"so-nordost": "district", "sav": "sav"}


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class DirectoryBuilder:
    """Signs directory entries as the root admin, tracking the state they continue."""

    admin_key: SigningKey
    directory: Directory = field(init=False)
    clock: int = field(default_factory=lambda: int(time.time()) - 3600)

    def __post_init__(self) -> None:
        self.directory = Directory({str(ROOT_ADMIN): self.admin_key.verify_key})

    def entry(self, type_: str, body: Mapping[str, Any], *, apply: bool = True) -> DirectoryEntry:
        self.clock += 1
        entry = make_entry(self.directory, type_, body, ROOT_ADMIN, self.admin_key, self.clock)
        if apply:
            self.directory.append(entry)
        return entry

    def enrol(self, pair: DeviceKeyPair) -> DirectoryEntry:
        return self.entry("enrol_device", enrol_pair(pair))

    def rotate(self, pair: DeviceKeyPair, *, min_encryption_version: int) -> DirectoryEntry:
        """Publish ``pair`` as the next key version of its device."""
        return self.entry(
            "rotate_device",
            {
                "device": str(pair.kid.device),
                "version": pair.kid.version,
                "verify_key": pair.signing_key.verify_key.b64(),
                "encryption_key": pair.encryption_key.public_key.b64(),
                "min_encryption_version": min_encryption_version,
            },
        )


def assert_problem(reply: Reply, status: int, code: str) -> None:
    """The reply is an RFC 9457 problem document with this status and code."""
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    body = reply.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith("/" + code)


class SignedClient:
    """Signs every request with ``keys.protocol.httpsig`` the way the SDK will."""

    def __init__(self, base: URL, kid: KeyId, key: SigningKey, http: aiohttp.ClientSession):
        self.base, self.kid, self.key, self.http = base, kid, key, http

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        created: int | None = None,
        nonce: str | None = None,
        signed_digest_of: bytes | None = None,
        sign: bool = True,
    ) -> Reply:
        body = data if data is not None else b""
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        url = self.base.join(URL(path, encoded=True))
        send: dict[str, str] = {}
        if content_type:
            send["Content-Type"] = content_type
        if sign:
            send.update(
                sign_request(
                    self.key,
                    str(self.kid),
                    method=method,
                    path=url.raw_path,
                    query=url.raw_query_string,
                    content_digest=content_digest(
                        body if signed_digest_of is None else signed_digest_of
                    ),
                    created=int(time.time()) if created is None else created,
                    nonce=nonce or new_nonce(),
                )
            )
        send.update(headers or {})
        async with self.http.request(method, url, data=body, headers=send) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return await self.request("POST", path, json_body=json_body, **kw)

    async def put(self, path: str, data: bytes, **kw: Any) -> Reply:
        return await self.request("PUT", path, data=data, **kw)


@dataclass
class RunningGateway:
    url: URL
    app: web.Application
    settings: Settings
    identity: GatewayIdentity
    admin_key: SigningKey
    devices: dict[str, DeviceKeyPair]
    builder: DirectoryBuilder
    http: aiohttp.ClientSession
    runner: web.AppRunner

    def client(self, kid: str | KeyId, key: SigningKey | None = None) -> SignedClient:
        kid = KeyId.parse(str(kid))
        if key is None:
            key = self.admin_key if kid == ROOT_ADMIN else self.devices[str(kid)].signing_key
        return SignedClient(self.url, kid, key, self.http)

    @property
    def admin(self) -> SignedClient:
        return self.client(ROOT_ADMIN)

    async def append(self, *entries: DirectoryEntry) -> None:
        """Store entries through the service (not HTTP), as another instance would."""
        await self.app[DIRECTORY].append(
            self.app[SESSIONMAKER], [e.to_json() for e in entries], caller=ROOT_ADMIN, now=0
        )


def make_settings(data_dir: Path, store_url: str, **overrides: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=store_url,
        gateway_key_passphrase=PASSPHRASE,
        insecure_fast_kdf=True,
        audit_checkpoint_interval_s=0,
        nonce_purge_interval_s=0,
    ).replace(**overrides)


async def start_gateway(
    data_dir: Path,
    store_url: str,
    *,
    configure: Callable[[web.Application], None] | None = None,
    admin_key: SigningKey | None = None,
    seed: bool = True,
    **overrides: Any,
) -> RunningGateway:
    """Start a migrated gateway; ``seed=False`` leaves its directory empty (bootstrap)."""
    settings = make_settings(data_dir, store_url, **overrides)
    await migrate(settings.db_url)
    admin_key = admin_key or SigningKey.generate()
    identity = init_identity(settings, {str(ROOT_ADMIN): admin_key.verify_key})
    app = create_app(settings, identity)
    if configure is not None:
        configure(app)
    # The parser's per-line limits, as `serve` sets them (a backstop to the middleware).
    runner = web.AppRunner(
        app,
        max_field_size=settings.max_header_bytes,
        max_line_size=settings.max_header_bytes,
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    builder = DirectoryBuilder(admin_key)
    devices = {kid: DeviceKeyPair.generate(KeyId.parse(kid)) for kid in DEVICES}
    gw = RunningGateway(
        url=URL(f"http://127.0.0.1:{port}"),
        app=app,
        settings=settings,
        identity=identity,
        admin_key=admin_key,
        devices=devices,
        builder=builder,
        http=aiohttp.ClientSession(),
        runner=runner,
    )
    if seed:
        await gw.append(*_seed_entries(builder, admin_key, devices))
    return gw


def _seed_entries(
    builder: DirectoryBuilder, admin_key: SigningKey, devices: Mapping[str, DeviceKeyPair]
) -> list[DirectoryEntry]:
    entries = [
        builder.entry(
            "add_admin", {"admin": str(ROOT_ADMIN), "verify_key": admin_key.verify_key.b64()}
        )
    ]
    for unit, kind in UNITS.items():
        entries.append(
            builder.entry("create_unit", {"unit": unit, "kind": kind, "name": unit_name(unit)})
        )
    entries.extend(builder.enrol(pair) for pair in devices.values())
    return entries


async def start_gateway_as(data_dir: Path, store_url: str, admin_key: SigningKey) -> RunningGateway:
    """A second gateway whose log is signed by the *same* root admin, with its own
    history (another start time, other units, no devices): what a forking gateway
    would show."""
    gw = await start_gateway(data_dir, store_url, admin_key=admin_key, seed=False)
    gw.devices.clear()
    gw.builder.clock -= 7 * DAY  # another history from entry 0 on
    await gw.append(
        gw.builder.entry(
            "add_admin", {"admin": str(ROOT_ADMIN), "verify_key": admin_key.verify_key.b64()}
        ),
        gw.builder.entry("create_unit", {"unit": "so-nordost", "kind": "district", "name": "X"}),
    )
    return gw


async def stop_gateway(gw: RunningGateway) -> None:
    await gw.http.close()
    await gw.runner.cleanup()


def _database(gw: RunningGateway) -> Path:
    return Path(gw.settings.db_url.split("///", 1)[1])


async def stalled_request(
    gw: RunningGateway,
    kid: str,
    method: str,
    path: str,
    body: bytes,
    resume: asyncio.Event,
    *,
    content_type: str,
) -> Reply:
    """A request signed by ``kid`` whose body stops half-way until ``resume`` is set:
    authenticated at once, decided only once the rest arrives."""
    url = gw.url.join(URL(path))
    headers = sign_request(
        gw.devices[kid].signing_key,
        kid,
        method=method,
        path=url.raw_path,
        query=url.raw_query_string,
        content_digest=content_digest(body),
        created=int(time.time()),
        nonce=new_nonce(),
    )
    headers["Content-Type"] = content_type
    half = len(body) // 2

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:half]
        await resume.wait()
        yield body[half:]

    async with gw.http.request(method, url, data=chunks(), headers=headers) as resp:
        return Reply(resp.status, resp.headers, await resp.read())


def blob_files(gw: RunningGateway) -> list[Path]:
    """Every envelope the gateway holds: each file under the blob root (a message's
    files sit in a directory of their own) and, on SQLite, each small envelope kept in
    the database (``blob_inline_bytes``), named ``<database>#<blob key>`` (not a file:
    a test that opens or damages blob files starts its gateway with
    ``blob_inline_bytes=0``)."""
    root = gw.settings.blobs
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
    if not gw.settings.db_url.startswith("sqlite"):
        return files
    database = _database(gw)
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        keys = [k for (k,) in db.execute("SELECT DISTINCT blob_key FROM blob_chunks")]
    return files + [Path(f"{database}#{key}") for key in sorted(keys)]


def stored_envelope(gw: RunningGateway) -> bytes:
    """The bytes of the one envelope the gateway holds (a file, or kept inline)."""
    (stored,) = blob_files(gw)
    if stored.exists():
        return stored.read_bytes()
    key = stored.name.split("#", 1)[1] if "#" in stored.name else str(stored).split("#", 1)[1]
    with contextlib.closing(sqlite3.connect(_database(gw), timeout=15)) as db:
        (data,) = db.execute("SELECT data FROM blob_chunks WHERE blob_key = ?", (key,)).fetchone()
    return bytes(data)


def tamper_stored_envelope(gw: RunningGateway, change: Callable[[bytearray], None]) -> None:
    """Change the one envelope the gateway holds in place, as someone with write access
    to its disk would (the file, or the database row of an inline envelope)."""
    (stored,) = blob_files(gw)
    data = bytearray(stored_envelope(gw))
    change(data)
    if stored.exists():
        stored.write_bytes(bytes(data))
        return
    key = str(stored).split("#", 1)[1]
    with contextlib.closing(sqlite3.connect(_database(gw), timeout=15)) as db, db:
        db.execute("UPDATE blob_chunks SET data = ? WHERE blob_key = ?", (bytes(data), key))


async def run_on_two_instances(
    store_url: str, job: Callable[[SessionMaker], Awaitable[int]]
) -> list[int]:
    """Run ``job`` concurrently as two gateway instances would: two engines (two
    pools), one database. Returns each instance's count."""
    engines = [open_engine(store_url), open_engine(store_url)]
    try:
        makers = [make_sessionmaker(e) for e in engines]
        return list(await asyncio.gather(*(job(m) for m in makers)))
    finally:
        for engine in engines:
            await engine.dispose()


async def rewrite_audit_entry_1(gw: RunningGateway) -> None:
    """An operator edits audit entry 1 in the database and recomputes every later hash:
    the chain is whole again; only a checkpoint signed before the edit disagrees."""
    async with gw.app[SESSIONMAKER].begin() as session:
        query = "SELECT seq, prev_hash, created, event, data_json FROM audit_entries ORDER BY seq"
        rows = (await session.execute(text(query))).all()
        prev: str | None = None
        for seq, prev_hash, created, event, data_json in rows:
            data = json.loads(data_json)
            if seq == 1:
                data["rewritten"] = True
            entry = {
                "seq": seq,
                "prev_hash": prev if prev is not None else prev_hash,
                "created": created,
                "event": event,
                "data": data,
            }
            prev = entry_hash(entry)
            await session.execute(
                text(
                    "UPDATE audit_entries SET prev_hash = :p, data_json = :d, hash = :h "
                    "WHERE seq = :s"
                ),
                {
                    "p": entry["prev_hash"],
                    "d": json.dumps(data, separators=(",", ":"), sort_keys=True),
                    "h": prev,
                    "s": seq,
                },
            )

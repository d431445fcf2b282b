"""One pass over an upload (issue 13 item 2): the gateway's receive-and-check of one
envelope, before and after.

``python -m bench.run upload [--quick]``: for v2 envelopes of a few sizes, the median
wall time and process CPU time (all threads) of

- ``spool``: what ``send_message`` did before — every chunk written to the temp file
  (one thread hop each) and hashed for ``upload_hash``, fsync, then the header read
  back from the file and ``verify_envelope`` over the whole file (two more passes, hB
  hashed on a worker thread);
- ``onepass``: ``BlobStore.receive`` fed through ``keys.protocol.envelope_verify_stream``
  (header, framing and hB as the chunks pass, inline), a small body held in memory and
  written once, then the signature.

Both fsync the blob (file and directories) as an accepted send must. ``ratio`` is
onepass / spool (lower is better); ``loop_stall_ms`` is the longest the event loop
waited on the one-pass path (a 1 ms ticker), so inline hashing is seen not to block it.
"""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.blobs import UPLOAD_HASH_PERSON, BlobStore, message_dir_name
from keys.crypto.canonical import Hasher
from keys.crypto.files import fsync_path
from keys.crypto.keypairs import DeviceKeyPair, KeyId, VerifyKey
from keys.protocol.envelope import EnvelopeHeader, read_header, seal, verify_envelope
from keys.protocol.envelope_verify_stream import EnvelopeVerifier

PIECE = 64 * 1024  # what verified_body yields
SENDER = DeviceKeyPair.generate(KeyId.parse("sav/eva/1"))
RECIPIENT = DeviceKeyPair.generate(KeyId.parse("so-nordost/anna/1"))


def _resolve(kid: KeyId) -> VerifyKey:
    del kid
    return SENDER.signing_key.verify_key


def _envelope(size: int) -> bytes:
    header = EnvelopeHeader(
        message_id="5b0d8f7e-3c1a-4e2b-9f6d-0a1b2c3d4e5f",
        sender=SENDER.kid,
        recipient_unit="so-nordost",
        recipients=(RECIPIENT.kid,),
        consent_id="consent-42",
        subject_ref="a1" * 32,
        category="case_transfer",
        purpose="transfer_to_district",
        created=1_767_225_600,
        expires=1_767_225_600 + 86400 * 14,
        checkpoint_size=12,
        checkpoint_head="0f" * 32,
        in_reply_to=None,
    )
    out = io.BytesIO()
    seal(header, io.BytesIO(os.urandom(size)), [RECIPIENT.public()], SENDER, out)
    return out.getvalue()


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(data), PIECE):
        yield data[at : at + PIECE]


async def _spool(store: BlobStore, data: bytes) -> None:
    """The previous path, step for step (receive into a file, then two reads)."""
    temp = store.temp_path(f"{message_dir_name('m')}/{secrets.token_hex(16)}")
    temp.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    hasher = Hasher(UPLOAD_HASH_PERSON)
    async for chunk in _pieces(data):
        await asyncio.to_thread(os.write, fd, chunk)
        hasher.update(chunk)
    await asyncio.to_thread(_sync, fd, temp.parent)
    hasher.digest()

    def header() -> None:
        with open(temp, "rb", buffering=1 << 20) as src:
            read_header(src)

    def verify() -> None:
        with open(temp, "rb", buffering=1 << 20) as src:
            verify_envelope(src, _resolve)

    await asyncio.to_thread(header)
    await asyncio.to_thread(verify)
    os.close(fd)
    temp.unlink()


def _sync(fd: int, directory: Path) -> None:
    os.fsync(fd)
    fsync_path(directory)
    fsync_path(directory.parent)


async def _onepass(store: BlobStore, data: bytes) -> None:
    verifier = EnvelopeVerifier()

    async def checked() -> AsyncIterator[bytes]:
        async for chunk in _pieces(data):
            verifier.feed(chunk)
            yield chunk
        verifier.finish()

    upload = await store.receive("m", checked())
    verifier.verify(_resolve)
    store.discard(upload)


async def _stall(stop: asyncio.Event) -> float:
    worst = 0.0
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        worst = max(worst, time.perf_counter() - before - 0.001)
    return worst


async def _measure(root: Path, data: bytes, reps: int) -> dict[str, Any]:
    store = BlobStore(root)
    times: dict[str, list[tuple[float, float]]] = {"spool": [], "onepass": []}
    stall = 0.0
    for _ in range(reps):
        for name, path in (("spool", _spool), ("onepass", _onepass)):
            stop = asyncio.Event()
            ticker = asyncio.create_task(_stall(stop))
            wall, cpu = time.perf_counter(), time.process_time()
            await path(store, data)
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            stop.set()
            worst = await ticker
            if name == "onepass":
                stall = max(stall, worst)
    spool = [statistics.median(t[i] for t in times["spool"]) for i in (0, 1)]
    one = [statistics.median(t[i] for t in times["onepass"]) for i in (0, 1)]
    return {
        "spool_ms": round(spool[0] * 1000, 2),
        "onepass_ms": round(one[0] * 1000, 2),
        "ratio": round(one[0] / spool[0], 2),
        "spool_cpu_ms": round(spool[1] * 1000, 2),
        "onepass_cpu_ms": round(one[1] * 1000, 2),
        "ratio_cpu": round(one[1] / spool[1], 2),
        "loop_stall_ms": round(stall * 1000, 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    sizes = {"2KiB": 2048, "200KiB": 200 * 1024, "16MiB": 16 << 20}
    if quick:
        sizes["16MiB"] = 4 << 20
    reps = 7 if quick else 21
    out: dict[str, Any] = {"load_avg_1m": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as root:
        for label, size in sizes.items():
            data = _envelope(size)
            out[label if not quick or size < 1 << 20 else "4MiB"] = asyncio.run(
                _measure(Path(root), data, reps if size < 1 << 20 else max(3, reps // 3))
            )
    return out

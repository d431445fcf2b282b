"""Body-hash candidates for envelope v2 against the secretstream cipher, on this machine.

``python -m bench.run hashes [--quick]``: throughput (MB/s, one core, 1 MiB updates over
a 64 MiB pool larger than the L3 cache) of each candidate hash next to
``crypto_secretstream_xchacha20poly1305`` push and pull with the envelope's 64 KiB chunks
(PyNaCl's public wrappers, ``keys.crypto.stream_baseline``). Issue 13 asks for a body hash
that runs at least as fast as the cipher: ``ratio_to_push`` ≥ 1.

Candidates: SHA-256, SHA-512, SHA-512/256 (hashlib = OpenSSL; SHA-NI / AVX2 code paths
chosen by OpenSSL at run time), BLAKE2b-256 (hashlib's own implementation, and
libsodium's through ``keys.crypto.envelope_stream.Blake2b``, what v1 uses), and BLAKE3
(PyPI ``blake3``) when it is installed — it is not a Stafett dependency; the figure
says what choosing it would buy.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

MIB = 1024 * 1024
_POOL = [os.urandom(MIB) for _ in range(64)]


def _hash_seconds(factory: Callable[[], Any], total: int) -> float:
    h = factory()
    start = time.perf_counter()
    for i in range(total // MIB):
        h.update(_POOL[i % len(_POOL)])
    h.digest()
    return time.perf_counter() - start


def _candidates() -> dict[str, Callable[[], Any]]:
    from keys.crypto.envelope_stream import Blake2b

    found: dict[str, Callable[[], Any]] = {
        "sha256": hashlib.sha256,
        "sha512": hashlib.sha512,
        "blake2b_256_hashlib": lambda: hashlib.blake2b(digest_size=32),
        "blake2b_256_libsodium": lambda: Blake2b(b"stafett.body"),
    }
    if "sha512_256" in hashlib.algorithms_available:
        found["sha512_256"] = lambda: hashlib.new("sha512_256")
    try:
        import blake3  # type: ignore[import-not-found,unused-ignore]  # optional

        found["blake3"] = blake3.blake3
        found["blake3_max_threads"] = lambda: blake3.blake3(max_threads=blake3.blake3.AUTO)
    except ImportError:
        print("  blake3 not installed: not measured", file=sys.stderr)
    return found


def run(quick: bool) -> dict[str, Any]:
    from keys.crypto.stream_baseline import secretstream_push_pull_seconds
    from keys.protocol.envelope_header import CHUNK_BYTES

    total = (256 if quick else 1024) * MIB
    repeats = 3 if quick else 5
    load_start = os.getloadavg()[0]
    push = pull = float("inf")
    for _ in range(repeats):
        p, q = secretstream_push_pull_seconds(total, CHUNK_BYTES)
        push, pull = min(push, p), min(pull, q)
    mbps: dict[str, float] = {
        "secretstream_push": total / push / 1e6,
        "secretstream_pull": total / pull / 1e6,
    }
    for name, factory in _candidates().items():
        best = min(_hash_seconds(factory, total) for _ in range(repeats))
        mbps[name] = total / best / 1e6
        print(f"  {name}: {mbps[name]:.0f} MB/s", file=sys.stderr)
    cipher = mbps["secretstream_push"]
    return {
        "mb_per_s": {k: round(v, 1) for k, v in mbps.items()},
        "ratio_to_push": {
            k: round(v / cipher, 2) for k, v in mbps.items() if not k.startswith("secretstream")
        },
        "bytes_per_measurement": total,
        "repeats_best_of": repeats,
        "cpus": os.cpu_count(),
        "loadavg_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }

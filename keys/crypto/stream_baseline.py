"""Raw secretstream throughput: the baseline the envelope benchmark compares against.

It lives in ``keys/crypto/`` only because nothing else may import nacl. It is not used by
Stafett itself: ``bench/envelope.py`` calls it to measure, in the same run and on the
same machine, what bare ``crypto_secretstream_xchacha20poly1305`` push + pull costs
with the envelope's chunk size and associated-data length, and nothing else (no
framing, hashing, padding, files or signatures).
"""

from __future__ import annotations

import os
import time

from nacl.bindings import (
    crypto_secretstream_xchacha20poly1305_init_pull,
    crypto_secretstream_xchacha20poly1305_init_push,
    crypto_secretstream_xchacha20poly1305_keygen,
    crypto_secretstream_xchacha20poly1305_pull,
    crypto_secretstream_xchacha20poly1305_push,
    crypto_secretstream_xchacha20poly1305_state,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)

_POOL_BYTES = 64 * 1024 * 1024  # larger than the L3 cache, so the input is not cache-hot


def secretstream_round_trip_seconds(total_bytes: int, chunk_bytes: int) -> tuple[float, float]:
    """Wall and CPU seconds to push ``total_bytes`` in ``chunk_bytes`` chunks and pull
    each one back.

    Both cover the push/pull loop only, not building the random input pool (which took
    ≈ 0.2 s of CPU and was once counted in the baseline's CPU, flattering the envelope's
    CPU ratio). The chunk size is a parameter (the caller passes the envelope's) so this
    crypto-layer module needs nothing from the protocol layer above it.
    """
    pool = [os.urandom(chunk_bytes) for _ in range(_POOL_BYTES // chunk_bytes)]
    key = crypto_secretstream_xchacha20poly1305_keygen()
    ad = bytes(32)  # the envelope's ad is hH, 32 bytes
    push_state = crypto_secretstream_xchacha20poly1305_state()
    pull_state = crypto_secretstream_xchacha20poly1305_state()
    header = crypto_secretstream_xchacha20poly1305_init_push(push_state, key)
    crypto_secretstream_xchacha20poly1305_init_pull(pull_state, header, key)
    tag = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
    chunks = max(1, total_bytes // chunk_bytes)
    cpu, start = time.process_time(), time.perf_counter()
    for i in range(chunks):
        cipher = crypto_secretstream_xchacha20poly1305_push(
            push_state, pool[i % len(pool)], ad, tag
        )
        crypto_secretstream_xchacha20poly1305_pull(pull_state, cipher, ad)
    return time.perf_counter() - start, time.process_time() - cpu


def secretstream_push_pull_seconds(total_bytes: int, chunk_bytes: int) -> tuple[float, float]:
    """Seconds to push ``total_bytes`` and, separately, to pull them back (same chunks).

    For ``bench/hashes.py``: a body hash must keep up with each direction on its own.
    """
    pool = [os.urandom(chunk_bytes) for _ in range(_POOL_BYTES // chunk_bytes)]
    key = crypto_secretstream_xchacha20poly1305_keygen()
    ad = bytes(32)
    push_state = crypto_secretstream_xchacha20poly1305_state()
    pull_state = crypto_secretstream_xchacha20poly1305_state()
    header = crypto_secretstream_xchacha20poly1305_init_push(push_state, key)
    crypto_secretstream_xchacha20poly1305_init_pull(pull_state, header, key)
    tag = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
    chunks = max(1, total_bytes // chunk_bytes)
    ciphers = [b""] * len(pool)
    push_s = pull_s = 0.0
    # In rounds of one pool: push a pool's worth, then pull it back, so the ciphertext
    # held in memory stays one pool (64 MiB) however large ``total_bytes`` is.
    for first in range(0, chunks, len(pool)):
        n = min(len(pool), chunks - first)
        start = time.perf_counter()
        for i in range(n):
            ciphers[i] = crypto_secretstream_xchacha20poly1305_push(push_state, pool[i], ad, tag)
        push_s += time.perf_counter() - start
        start = time.perf_counter()
        for i in range(n):
            crypto_secretstream_xchacha20poly1305_pull(pull_state, ciphers[i], ad)
        pull_s += time.perf_counter() - start
    return push_s, pull_s

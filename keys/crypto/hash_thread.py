"""A hash fed piece by piece in stream order, computed on a second core.

Shared by envelope v1 (BLAKE2b through libsodium) and v2 (SHA-256 through hashlib):
both release the GIL while they hash a large piece, so a worker thread hashing the
body overlaps the cipher running on the calling thread.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Protocol

Buffer = bytes | bytearray | memoryview


class IncrementalHash(Protocol):
    def update(self, data: Buffer, /) -> None: ...

    def digest(self) -> bytes: ...


class ThreadedHasher:
    """``base`` fed piece by piece, in stream order, on one worker thread.

    Pieces are hashed in ≥ 512 KiB batches. At most ``_DEPTH`` batches wait, which keeps
    memory bounded (a few MiB). Small streams never start a thread. Pieces must not be
    modified after ``update`` (pass ``bytes``, views of ``bytes``, or a buffer the caller
    never touches again). Use as a context manager so the worker is always joined.
    """

    _BATCH_BYTES = 1 << 19
    _DEPTH = 3  # batches or tasks waiting for the thread: what bounds memory

    def __init__(self, base: IncrementalHash) -> None:
        self._hash = base
        self._batch: list[Buffer] = []
        self._batch_bytes = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[object]] = deque()

    def update(self, piece: Buffer) -> None:
        self._batch.append(piece)
        self._batch_bytes += memoryview(piece).nbytes
        if self._batch_bytes >= self._BATCH_BYTES:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            self._submit(self._absorb, batch)

    def also(self, task: Callable[[], object]) -> None:
        """Run ``task`` on the worker too, after everything handed over before it.

        For the file writes that accompany the hash (v2): the worker hashes and writes
        while the calling thread encrypts or decrypts, so I/O overlaps the cipher as
        well. Tasks run in the order given; an exception surfaces at a later call or at
        ``digest``, which also waits for every task. Before the first batch has gone to
        the worker (a small stream) nothing is pending, so the task runs here at once:
        a 2 KiB message never starts a thread.
        """
        if self._pool is None:
            task()
        else:
            self._submit(task)

    def update_joined(self, pieces: list[bytes], then: Callable[[bytes], object]) -> None:
        """Join ``pieces``, hash the whole, then call ``then(joined)``: on the worker.

        For v2's seal, whose batches are ~34 frames of ~512 KiB in all: one join, one
        hash call and one write per batch on the worker, instead of one hash call per
        frame, each a round trip through the GIL while the calling thread encrypts. In
        order with ``update`` and ``also``; a small stream (no worker yet, less than a
        batch) is done here at once and never starts a thread.
        """
        if self._batch:  # what update() still holds is hashed first
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            self.also(functools.partial(self._absorb, batch))
        if self._pool is None and sum(len(p) for p in pieces) < self._BATCH_BYTES:
            self._join_absorb(pieces, then)
        else:
            self._submit(self._join_absorb, pieces, then)

    def _join_absorb(self, pieces: list[bytes], then: Callable[[bytes], object]) -> None:
        joined = b"".join(pieces)
        self._hash.update(joined)
        then(joined)

    def _submit(self, fn: Callable[..., object], *args: object) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stafett-hash")
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > self._DEPTH:
            self._pending.popleft().result()

    def _absorb(self, batch: list[Buffer]) -> None:
        for piece in batch:
            self._hash.update(piece)

    def digest(self) -> bytes:
        # The single worker runs batches in submission order; the state is touched by
        # this thread only once every batch has finished.
        while self._pending:
            self._pending.popleft().result()
        self._absorb(self._batch)
        self._batch, self._batch_bytes = [], 0
        return self._hash.digest()

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._pending.clear()

    def __enter__(self) -> ThreadedHasher:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

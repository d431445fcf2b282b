"""Reading a large envelope or body on a worker thread, a few blocks ahead.

Envelope v2 keeps the calling thread for the cipher (secretstream is strictly
sequential) and moves everything else to other threads: the hash and the writes to the
hashing thread (``keys.crypto.hash_thread``), and the reads here. Reading a file
releases the GIL, so on a second core the page-cache copies overlap the cipher instead
of adding to it (docs/benchmarks.md, "envelope": ≈ 0.3 s per GiB per side).

Only regular files are read ahead: a read from one never blocks indefinitely, so the
worker can always be joined before the caller gets its stream back; pipes, sockets
and in-memory streams are read on the calling thread as before. Every piece read is
returned once, in order, as immutable ``bytes``: what the caller hashes and decrypts
is exactly what was read (the single-read property of open v2 is unchanged).
"""

from __future__ import annotations

import io
import os
import stat
import threading
from collections.abc import Callable
from queue import SimpleQueue
from types import TracebackType
from typing import BinaryIO, Generic, TypeVar

T = TypeVar("T")


def is_regular_file(stream: BinaryIO) -> bool:
    """True when ``stream`` is backed by a regular file (safe to read ahead)."""
    return bytes_left(stream) is not None


def bytes_left(stream: BinaryIO) -> int | None:
    """Bytes from the position to the end of a regular file; None for anything else."""
    try:
        fd = stream.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        return max(0, info.st_size - stream.tell())
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


class ReadAhead(Generic[T]):
    """``read()`` called on one worker thread, at most ``depth`` results ahead.

    ``next()`` returns the results in order; ``read`` signals the end with a falsy
    result, after which ``read`` is not called again. An exception in ``read`` is raised
    by the ``next()`` that would have returned its result. ``close()`` (or leaving the
    ``with`` block) stops the worker and joins it; anything read but not taken is
    dropped. Memory: ``depth`` results plus the one being read.
    """

    def __init__(self, read: Callable[[], T], depth: int = 4) -> None:
        self._read = read
        self._results: SimpleQueue[tuple[T | None, BaseException | None]] = SimpleQueue()
        self._room = threading.Semaphore(depth)
        self._stop = False
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="stafett-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._room.acquire()
            if self._stop:
                return
            try:
                result = self._read()
            except BaseException as exc:  # handed to the caller, raised there
                self._results.put((None, exc))
                return
            self._results.put((result, None))
            if not result:
                return

    def next(self) -> T:
        if self._ended:
            raise ValueError("read past the end")
        result, failure = self._results.get()
        self._room.release()
        if failure is not None:
            self._ended = True
            raise failure
        if not result:
            self._ended = True
        return result  # type: ignore[return-value]  # None only with a failure

    def close(self) -> None:
        self._stop = True
        self._room.release()  # wakes a worker waiting for room; it then sees _stop
        self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

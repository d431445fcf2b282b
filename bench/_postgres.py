"""A throwaway PostgreSQL cluster for benchmarks (initdb + pg_ctl from PATH), like the
test fixture in tests/gateway/conftest.py: fsync off (a benchmark, not a deployment),
trust authentication on 127.0.0.1, removed on exit. Besides the gateway's database
``bench`` it holds ``bare``, the relay bench's PostgreSQL floor (same cluster, so the
same durability settings)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root; the image has a `postgres` user for this.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextmanager
def throwaway_cluster(options: str = "") -> Iterator[int]:
    """Start a new cluster (initdb + pg_ctl from PATH) in a temporary directory, as the
    ``postgres`` user when run as root; yield its port on 127.0.0.1 (trust
    authentication, fsync off); stop and remove it on exit. ``options``: more server
    settings. Shared with the test fixture (``tests/support/fixtures.pg_cluster``)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("initdb and pg_ctl are not on PATH")
    base = Path(tempfile.mkdtemp(prefix="stafett-pg-"))
    data, sockdir = base / "data", base / "sock"
    sockdir.mkdir()
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (base, sockdir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    server = f"-k {sockdir} -h 127.0.0.1 -p {port} -c fsync=off {options}".strip()
    subprocess.run(
        _as_postgres(
            [pg_ctl, "-D", str(data), "-o", server, "-l", str(base / "log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield port
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def cluster() -> Iterator[str]:
    """Yield the SQLAlchemy URL of a fresh database ``bench`` on a new cluster (and create
    an empty database ``bare`` beside it: :func:`asyncpg_dsn` names it)."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        raise SystemExit("--store postgresql needs initdb and pg_ctl on PATH")
    with throwaway_cluster("-c max_connections=200") as port:
        createdb = shutil.which("createdb")
        assert createdb is not None
        for name in ("bench", "bare"):
            subprocess.run(
                _as_postgres(
                    [createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", name]
                ),
                check=True,
                capture_output=True,
            )
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/bench"


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    """The plain ``postgresql://`` DSN asyncpg takes for a :func:`cluster` URL, optionally
    naming another database on the same cluster (``bare``)."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return dsn if database is None else f"{dsn.rsplit('/', 1)[0]}/{database}"

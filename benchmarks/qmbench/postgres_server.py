"""A private PostgreSQL server for W3p, on a free port, removed when the run ends.

qm-store-postgres's `TemporaryServer` (initdb in a temporary folder; as root it
runs as the user ``postgres``) with fsync and synchronous_commit on, as a
production server runs: every commit is flushed to disk before it returns.
Never the machine's own server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from qm_store_postgres.testing import TemporaryServer


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server; yield its DSN; remove it on exit."""
    server = TemporaryServer(fsync=True).start()
    try:
        yield server.dsn()
    finally:
        server.remove()

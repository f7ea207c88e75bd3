"""`TemporaryServer`: a throwaway PostgreSQL server, for tests and benchmarks.

``initdb`` in a new temporary folder, a free port on 127.0.0.1, a socket folder
of its own: never the machine's server on 5432. initdb and pg_ctl refuse to
run as root, so as root they run as the user ``postgres`` (the folder is given
to it); otherwise as the current user. The binaries come from ``PATH`` or
Debian's ``/usr/lib/postgresql/<version>/bin``::

    server = TemporaryServer().start()
    store = PostgresStore(server.dsn())
    ...
    server.remove()
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

#: The superuser initdb makes, and its password (host connections use scram).
SUPERUSER = "qm"
PASSWORD = "s3cret-pw"
DATABASE = "qm_test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    assert port != 5432
    return port


def binary(name: str) -> str:
    """A PostgreSQL server binary: on PATH, else Debian's versioned folder."""
    found = shutil.which(name)
    if found is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        found = candidates[-1] if candidates else None
    if found is None:
        raise RuntimeError(
            f"{name} is not installed: a PostgreSQL server is needed "
            "(Debian: apt-get install postgresql)"
        )
    return found


def _postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "initdb refuses to run as root and there is no user 'postgres' to run it as "
            "(Debian's postgresql package creates it)"
        ) from None


class TemporaryServer:
    """A PostgreSQL server of our own. ``start`` raises RuntimeError when it cannot
    be made or does not start; ``fsync`` off suits tests, on suits benchmarks."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="qm-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.fsync = fsync
        self._as_root = os.geteuid() == 0
        if self._as_root:
            entry = _postgres_user()
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(["mkdir", "-p", str(self.sockets)])

    def _run(self, args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        # From our own folder: the caller's may be closed to the postgres user.
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.root,
            **kwargs,
        )

    def dsn(self, user: str = SUPERUSER, password: str = PASSWORD, database: str = DATABASE) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.dsn()

    def init(self) -> TemporaryServer:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_root:
            entry = _postgres_user()
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        done = self._run(
            [
                binary("initdb"), "-D", str(self.data), "-U", SUPERUSER,
                f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                "-E", "UTF8", "--locale=C", "--no-sync",
            ]
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr}{done.stdout}")
        return self

    def start(self) -> TemporaryServer:
        if not self.data.exists():
            self.init()
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            f"-c fsync={'on' if self.fsync else 'off'} -c synchronous_commit=on "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        done = self._run(
            [binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
             "-w", "-t", "60", "start"]
        )  # fmt: skip
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start ({done.returncode}): {done.stderr}{log}")
        if not self.admin_value(
            f"SELECT count(*) FROM pg_database WHERE datname = '{DATABASE}'", database="postgres"
        ):
            self.admin(f"CREATE DATABASE {DATABASE}", database="postgres")
        return self

    def crash(self) -> None:
        """Stop at once without a checkpoint, as a crash would (recovery on start)."""
        self._run([binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def stop(self) -> None:
        self._run([binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def admin(self, sql: str, database: str = DATABASE) -> None:
        """Run ``sql`` as the superuser (tests set up roles and look at tables)."""
        asyncio.run(self._admin(sql, database, "execute"))

    def admin_value(self, sql: str, database: str = DATABASE) -> Any:
        return asyncio.run(self._admin(sql, database, "fetchval"))

    def admin_rows(self, sql: str, database: str = DATABASE) -> list[Any]:
        return list(asyncio.run(self._admin(sql, database, "fetch")))

    async def _admin(self, sql: str, database: str, how: str) -> Any:
        conn = await asyncpg.connect(self.dsn(database=database), timeout=10)
        try:
            return await getattr(conn, how)(sql)
        finally:
            await conn.close()

"""Files the store must refuse: each error names the path, and nothing is written."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from qm_store_sqlite import SchemaVersionError, SQLiteStore, StoreOpenError
from quartermaster_engine import FlowRunner, SimpleNodeRegistry
from quartermaster_engine.testing import chain_graph


def _files(folder: Path) -> dict[str, str]:
    """Every file of ``folder`` with a hash of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()
    }


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable, for root too (root ignores permission bits, so the
    folder is also made immutable); fail if this machine cannot."""
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    immutable = False
    try:
        if os.geteuid() == 0:
            chattr = shutil.which("chattr")
            if chattr is None:
                pytest.fail("running as root without chattr: cannot make a read-only folder")
            subprocess.run([chattr, "+i", str(folder)], check=True, capture_output=True)
            immutable = True
        probe = folder / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.fail(f"could not make {folder} read-only on this machine")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True, capture_output=True)
        folder.chmod(stat.S_IRWXU)


def test_a_path_in_a_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "flows.db"
    with pytest.raises(StoreOpenError) as err:
        SQLiteStore(path)
    assert str(err.value) == (
        f"cannot open the SQLite store {path}: its folder {path.parent} does not exist"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_path_in_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "flows.db"
    with read_only(folder), pytest.raises(StoreOpenError) as err:
        SQLiteStore(path)
    assert str(err.value) == (
        f"cannot open the SQLite store {path}: its folder {folder} is read-only (SQLite needs "
        "to create the database and its -wal and -shm files there)"
    )
    assert list(folder.iterdir()) == []


def test_an_existing_store_in_a_folder_made_read_only(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "flows.db"
    store = SQLiteStore(path)
    FlowRunner(chain_graph(3), SimpleNodeRegistry({"echo": lambda c: "x"}), store=store).run("in")
    asyncio.run(store.close())
    before = _files(folder)
    assert set(before) == {"flows.db"}  # closing checkpointed and removed -wal and -shm
    with read_only(folder), pytest.raises(StoreOpenError, match="is read-only"):
        SQLiteStore(path)
    assert _files(folder) == before


def test_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    path.write_text("flow_id,status\n1,completed\n")
    before = _files(tmp_path)
    with pytest.raises(StoreOpenError) as err:
        SQLiteStore(path)
    assert str(err.value) == (
        f"cannot open the SQLite store {path}: the file is not a SQLite database "
        "(it starts with b'flow_id,')"
    )
    assert _files(tmp_path) == before


def test_a_folder_given_as_the_file(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError) as err:
        SQLiteStore(tmp_path)
    assert str(err.value) == f"cannot open the SQLite store {tmp_path}: it is a folder, not a file"


def test_a_file_written_by_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    asyncio.run(_open_and_close(SQLiteStore(path)))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE qm_meta SET value = '7' WHERE key = 'schema_version'")
    db.execute("CREATE TABLE qm_from_the_future (x)")
    db.close()
    before = _files(tmp_path)

    store = SQLiteStore(path)  # the path itself is fine: the schema is read on first use
    with pytest.raises(SchemaVersionError) as err:
        asyncio.run(store.open())
    assert str(err.value) == (
        f"cannot open the SQLite store {path}: it was written by a newer qm-store-sqlite "
        "(schema version 7); qm-store-sqlite 0.2.0 reads schema versions up to 4. Upgrade "
        "qm-store-sqlite to use this file; it was not changed."
    )
    # A runner's first use raises the same error, and nothing is written.
    runner = FlowRunner(chain_graph(3), SimpleNodeRegistry({"echo": lambda c: "x"}), store=store)
    with pytest.raises(SchemaVersionError, match="schema version 7"):
        runner.run("in")
    asyncio.run(store.close())
    assert _files(tmp_path) == before


def test_the_plugin_factory_raises_the_same_errors(tmp_path: Path) -> None:
    from qm_store_sqlite.plugin import create_store
    from qm_store_sqlite.settings import SQLiteSettings

    settings = SQLiteSettings.model_validate(
        {"path": "nested/flows.db"}, context={"config_dir": tmp_path}
    )
    with pytest.raises(StoreOpenError, match=f"{tmp_path}/nested does not exist"):
        create_store(settings)


async def _open_and_close(store: SQLiteStore) -> None:
    await store.open()
    await store.close()

"""A damaged file gets a named error that says it is damaged and was not changed."""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from qm_store_sqlite import SQLiteStore, StoreDamagedError, StoreOpenError
from quartermaster_engine import FlowRunner, SimpleNodeRegistry
from quartermaster_engine.cli import main
from quartermaster_engine.testing import chain_graph

UNCHANGED = "it was not changed. Restore it from a backup, or move it away to start a new store"


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    """A store file with five finished flows, checkpointed into the main file."""
    path = tmp_path_factory.mktemp("good") / "flows.db"
    store = SQLiteStore(path)
    registry = SimpleNodeRegistry({"work": lambda c: "x" * 3000})
    runner = FlowRunner(chain_graph(40, "work"), registry, store=store)
    flow_ids = [runner.run("in").flow_id for _ in range(5)]
    asyncio.run(store.close())
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return path, flow_ids


def _copy(good: tuple[Path, list[Any]], tmp_path: Path, sql: str | None = None) -> Path:
    path = tmp_path / "flows.db"
    shutil.copy(good[0], path)
    if sql is not None:
        con = sqlite3.connect(path)
        con.execute(sql)
        con.commit()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        for extra in ("-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_everything(path: Path, flow_ids: list[Any]) -> None:
    async def read() -> None:
        store = SQLiteStore(path)
        try:
            await store.list_flows()
            for flow_id in flow_ids:
                await store.load_flow(flow_id)
        finally:
            await store.close()

    asyncio.run(read())


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        (
            "UPDATE qm_meta SET value = 'abc' WHERE key = 'schema_version'",
            "schema_version in qm_meta is 'abc', not a version (1 or more)",
        ),
        (
            "UPDATE qm_meta SET value = '0' WHERE key = 'schema_version'",
            "schema_version in qm_meta is '0', not a version (1 or more)",
        ),
        (
            "UPDATE qm_meta SET value = '-1' WHERE key = 'schema_version'",
            "schema_version in qm_meta is '-1', not a version (1 or more)",
        ),
        (
            "DROP TABLE qm_meta",
            "table qm_meta is missing, but qm_agent_memory, qm_changes, qm_deliveries, qm_events, "
            "qm_flows, qm_graphs, qm_key_usage, qm_loop_exits, qm_memory, qm_messages, qm_pending, "
            "qm_records, qm_requests, qm_schedules, qm_slots, qm_tokens, qm_waiters exist",
        ),
        ("DROP TABLE qm_records", "schema version 4 has tables qm_records missing"),
        (
            "DELETE FROM qm_meta WHERE key = 'schema_version'",
            "qm_meta has no schema_version, but qm_agent_memory, qm_changes, qm_deliveries, "
            "qm_events, "
            "qm_flows, qm_graphs, qm_key_usage, qm_loop_exits, qm_memory, qm_messages, "
            "qm_pending, qm_records, qm_requests, qm_schedules, qm_slots, qm_tokens, "
            "qm_waiters exist",
        ),
    ],
    ids=["version-abc", "version-0", "version-minus-1", "no-meta", "no-records", "no-version"],
)
def test_damaged_tables_are_named_and_the_file_is_not_changed(
    good: tuple[Path, list[Any]], tmp_path: Path, sql: str, problem: str
) -> None:
    path = _copy(good, tmp_path, sql)
    before = _digest(path)
    with pytest.raises(StoreDamagedError) as info:
        _read_everything(path, good[1])
    assert str(info.value) == (
        f"cannot open the SQLite store {path}: the file is damaged: {problem}; {UNCHANGED}"
    )
    assert isinstance(info.value, StoreOpenError)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.db"]


def test_garbage_pages_inside_a_valid_file_are_named_damage(
    good: tuple[Path, list[Any]], tmp_path: Path
) -> None:
    path = _copy(good, tmp_path)
    data = bytearray(path.read_bytes())
    page = 4096
    middle = len(data) // page // 2
    noise = random.Random(14).randbytes(3 * page)
    data[middle * page : (middle + 3) * page] = noise
    path.write_bytes(bytes(data))
    before = _digest(path)
    with pytest.raises(StoreDamagedError) as info:
        _read_everything(path, good[1])
    message = str(info.value)
    assert message.startswith(f"the SQLite store {path} is damaged (")
    assert message.endswith(
        "); nothing was changed (the transaction was rolled back). Restore it from a "
        "backup, or move it away to start a new store"
    )
    assert _digest(path) == before


def test_qm_flows_list_on_a_damaged_file_is_one_error_line(
    good: tuple[Path, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _copy(good, tmp_path, "DROP TABLE qm_records")
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    monkeypatch.chdir(tmp_path)
    for var in ("QM_STORE", "QM_DISPATCHER", "QM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(main, ["flows", "list", "--config", "qm.toml"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot open the SQLite store {path}: the file is damaged: schema version 4 "
        f"has tables qm_records missing; {UNCHANGED}\n"
    )


def test_a_zero_byte_file_is_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    path.write_bytes(b"")
    runner = FlowRunner(
        chain_graph(3, "work"), SimpleNodeRegistry({"work": lambda c: "w"}), store=SQLiteStore(path)
    )
    assert runner.run("x").final_output == "w"
    assert path.stat().st_size > 0

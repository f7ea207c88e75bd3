"""The file's schema: the version record, WAL, graphs stored once, indexed reads."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from uuid import uuid4

from qm_store_sqlite import SCHEMA_VERSION, SQLiteStore
from qm_store_sqlite.graphs import GraphCache
from qm_store_sqlite.queries import load_flow
from qm_store_sqlite.schema import TABLES
from quartermaster_engine import FlowRunner, SimpleNodeRegistry
from quartermaster_engine.stores.records import FlowRecord
from quartermaster_engine.testing import build_graph, chain_graph
from quartermaster_graph import GraphSpec


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _tables(db: sqlite3.Connection) -> set[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


async def _create_flows(store: SQLiteStore, graph: GraphSpec, count: int) -> list[FlowRecord]:
    records = []
    for _ in range(count):
        now = time.time()
        record = FlowRecord(flow_id=uuid4(), graph=graph, input="x", created_at=now, updated_at=now)
        await store.create_flow(record)
        records.append(record)
    return records


def test_a_new_file_gets_the_version_record_wal_and_every_table(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    store = SQLiteStore(path)
    assert not path.exists()  # opened on first use
    asyncio.run(store.open())
    asyncio.run(store.close())
    db = _raw(path)
    try:
        version = db.execute("SELECT value FROM qm_meta WHERE key = 'schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
        assert SCHEMA_VERSION == 4
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert _tables(db) == set(TABLES)
    finally:
        db.close()


def test_another_applications_sqlite_file_gains_our_tables_and_keeps_its_own(
    tmp_path: Path,
) -> None:
    # A version-0 file: SQLite, but none of our tables (say, a 0.1.5 agent's file).
    path = tmp_path / "my_agent.db"
    db = _raw(path)
    db.execute("CREATE TABLE node_executions (flow_id TEXT, node_id TEXT, data TEXT)")
    db.execute("INSERT INTO node_executions VALUES ('f', 'n', '{}')")
    db.close()

    store = SQLiteStore(path)
    result = FlowRunner(chain_graph(4), SimpleNodeRegistry({"echo": _echo}), store=store).run("x")
    asyncio.run(store.close())

    assert result.final_output == "n1(n0(x))"
    db = _raw(path)
    try:
        assert _tables(db) == {*TABLES, "node_executions"}
        assert db.execute("SELECT * FROM node_executions").fetchall() == [("f", "n", "{}")]
        assert db.execute("SELECT value FROM qm_meta").fetchall() == [("4",)]
    finally:
        db.close()


def _echo(ctx: object) -> str:
    return f"{ctx.current_node.name}({ctx.input_text})"  # type: ignore[attr-defined]


def test_a_thousand_flows_of_one_graph_store_it_once(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    store = SQLiteStore(path)
    graph = chain_graph(50)
    other = build_graph({"Start": "Start1", "End": "End1"}, [("Start", "End")])

    async def scenario() -> None:
        try:
            flows = await _create_flows(store, graph, 1000)
            # The same content as another object is the same graph.
            await _create_flows(store, graph.model_copy(deep=True), 1)
            (lone,) = await _create_flows(store, other, 1)
            db = _raw(path)
            assert db.execute("SELECT count(*) FROM qm_graphs").fetchone() == (2,)
            assert db.execute("SELECT count(*) FROM qm_flows").fetchone() == (1002,)
            # A graph goes with the last flow that uses it.
            assert await store.delete_flow(lone.flow_id) is True
            assert db.execute("SELECT count(*) FROM qm_graphs").fetchone() == (1,)
            for record in flows[:10]:
                await store.delete_flow(record.flow_id)
            assert db.execute("SELECT count(*) FROM qm_graphs").fetchone() == (1,)
            db.close()
        finally:
            await store.close()

    asyncio.run(scenario())


def test_loading_a_flow_only_searches_indexes(tmp_path: Path) -> None:
    """load_flow reads the flow's own rows through primary keys: no table scan, so
    its cost does not grow with the other flows in the file."""
    path = tmp_path / "flows.db"
    store = SQLiteStore(path)
    runner = FlowRunner(chain_graph(20), SimpleNodeRegistry({"echo": _echo}), store=store)
    results = [runner.run(f"x{i}") for i in range(5)]
    asyncio.run(store.close())

    db = _raw(path)
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    snapshot = load_flow(db, GraphCache(path), results[2].flow_id.bytes)
    db.set_trace_callback(None)
    try:
        assert snapshot is not None
        assert len(snapshot.records) == 20
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 8  # flow, graph, records, record count, queue, joins, loops, memory
        for sql in selects:
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            # (Sorting the few rows found, as for the queue, is fine.)
            assert plan[0].startswith("SEARCH"), (sql, plan)
            assert not any(step.startswith("SCAN") for step in plan), (sql, plan)
    finally:
        db.close()


def test_a_version_1_file_is_migrated_and_keeps_its_flows(tmp_path: Path) -> None:
    """A file written before fencing and the event log (schema 1) gains them on
    first use; its flows read back with no lease and an empty log, and new flows
    log their events."""
    from qm_store_sqlite import schema

    path = tmp_path / "flows.db"
    db = _raw(path)
    db.execute("BEGIN IMMEDIATE")
    schema.MIGRATIONS[0](db)
    db.execute("INSERT INTO qm_meta (key, value) VALUES ('schema_version', '1')")
    db.execute("INSERT INTO qm_graphs (hash, spec) VALUES ('g', ?)", (_GRAPH.model_dump_json(),))
    old = uuid4()
    db.execute(
        "INSERT INTO qm_flows (flow_id, graph_hash, input, status, created_at, updated_at, "
        "error, final_output, event_seq, parent_flow_id) "
        "VALUES (?, 'g', 'x', 'completed', 1.0, 2.0, NULL, 'done', 4, NULL)",
        (old.bytes,),
    )
    db.execute("COMMIT")
    db.close()

    store = SQLiteStore(path)
    runner = FlowRunner(_GRAPH, SimpleNodeRegistry({"echo": _echo}), store=store)
    new = runner.run("y")  # the first use migrates the file to version 4
    record = asyncio.run(store.get_flow(old))
    assert record is not None
    assert (record.status.value, record.final_output, record.event_seq) == ("completed", "done", 4)
    assert (record.version, record.lease(), record.lease_epoch) == (0, None, 0)
    assert asyncio.run(store.read_events(old)) == []
    assert [e.type for e in asyncio.run(store.read_events(new.flow_id))][-1] == "FlowFinished"
    asyncio.run(store.close())
    db = _raw(path)
    try:
        assert db.execute("SELECT value FROM qm_meta").fetchall() == [("4",)]
        assert _tables(db) == set(TABLES)
    finally:
        db.close()


_GRAPH = chain_graph(3)

"""What the PostgreSQL store guarantees beyond the conformance kit: all-or-nothing
commits, locks and timeouts, loops and threads, retention, deletion, schema."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from qm_pg_support import PostgresServer, store_for

from qm_store_postgres import SCHEMA_VERSION, PostgresStore, PostgresStoreError
from qm_store_postgres.schema import FLOW_TABLES, TABLES
from quartermaster_engine import FlowRunner
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    FlowRecord,
    FlowStatus,
    FlowUpdate,
)
from quartermaster_engine.testing import call, chain_graph
from quartermaster_engine.testing.graphs import name_id
from quartermaster_engine.types import Message, MessageRole


@pytest.fixture
def store(pg_server: PostgresServer, schema: str) -> Any:
    store = store_for(pg_server, schema)
    yield store
    call(store, "close")


def _flow(store: PostgresStore, updated: float | None = None, **fields: Any) -> FlowRecord:
    now = time.time() if updated is None else updated
    record = FlowRecord(uuid4(), chain_graph(3), "in", created_at=now, updated_at=now, **fields)
    call(store, "create_flow", record)
    return record


def _end(store: PostgresStore, record: FlowRecord, at: float) -> None:
    call(store, "update_flow", record.flow_id, FlowUpdate(FlowStatus.COMPLETED, updated_at=at))


def _echo(ctx: Any) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def test_a_commit_that_fails_on_the_server_changes_nothing(store: PostgresStore) -> None:
    record = _flow(store)
    first = Activation(name_id("n0"), 1)
    call(store, "commit", record.flow_id, Commit(enqueue=[first]))
    rec = NodeExecution(name_id("n0"), NodeStatus.FINISHED, visit=1, result="ok")
    # PostgreSQL refuses NUL in text: the memory write, after the queue and the
    # record, fails, and the whole commit with it.
    bad = Commit(first.key, rec, {"k\x00": 1}, enqueue=[Activation(name_id("n1"), 1)])
    with pytest.raises(PostgresStoreError) as caught:
        call(store, "commit", record.flow_id, bad)
    assert str(caught.value).endswith(
        'failed: CharacterNotInRepertoireError: invalid byte sequence for encoding "UTF8": 0x00'
    )
    snap = call(store, "load_flow", record.flow_id)
    assert ([a.key for a in snap.pending], snap.records, snap.memory) == ([first.key], [], {})


def test_commits_and_updates_of_an_unknown_flow_raise(store: PostgresStore) -> None:
    missing = uuid4()
    with pytest.raises(FlowNotFoundError, match=f"^no flow {missing} in postgres "):
        call(store, "commit", missing, Commit(enqueue=[Activation(name_id("n0"), 1)]))
    with pytest.raises(FlowNotFoundError, match=f"^no flow {missing} in postgres "):
        call(store, "update_flow", missing, FlowUpdate(FlowStatus.FAILED, time.time()))
    assert call(store, "load_flow", missing) is None


def test_a_node_writing_a_value_that_is_not_json_fails_its_flow_clearly(
    store: PostgresStore,
) -> None:
    def bad(ctx: Any) -> NodeResult:
        return NodeResult(output_text="x", data={"when": object()})

    graph = chain_graph(3)
    result = FlowRunner(graph, SimpleNodeRegistry({"echo": bad}), store=store).run("in")
    assert result.status is FlowStatus.FAILED
    assert result.error is not None
    assert "n0" in result.error
    assert "cannot be stored as JSON: Type is not JSON serializable: object" in result.error


def test_a_commit_waits_for_a_held_row_lock_up_to_statement_timeout(
    pg_server: PostgresServer, schema: str
) -> None:
    store = store_for(pg_server, schema, statement_timeout=0.5)
    now = time.time()
    record = FlowRecord(uuid4(), chain_graph(3), "in", created_at=now, updated_at=now)

    async def held() -> str:
        await store.create_flow(record)
        conn = await asyncpg.connect(pg_server.url)
        try:
            async with conn.transaction():
                await conn.execute(
                    f"SELECT 1 FROM {schema}.qm_flows WHERE flow_id = $1 FOR UPDATE",
                    record.flow_id,
                )
                with pytest.raises(PostgresStoreError) as caught:
                    await store.commit(
                        record.flow_id, Commit(enqueue=[Activation(name_id("n0"), 1)])
                    )
                return str(caught.value)
        finally:
            await conn.close()
            await store.close()

    message = asyncio.run(held())
    assert message.startswith(
        f"PostgreSQL server {pg_server.dsn(password='***')}: a statement ran past "
        "statement_timeout (0.5 s): canceling statement due to statement timeout"
    )
    reopened = store_for(pg_server, schema)
    assert call(reopened, "load_flow", record.flow_id).pending == []
    call(reopened, "close")


def test_one_store_serves_several_threads_and_loops_at_once(store: PostgresStore) -> None:
    runner = FlowRunner(chain_graph(30), SimpleNodeRegistry({"echo": _echo}), store=store)
    outputs: list[str | None] = []
    errors: list[BaseException] = []

    def in_thread(i: int) -> None:
        try:
            outputs.append(runner.run(f"t{i}").final_output)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(o[:12] for o in outputs if o) == ["n27(n26(n25("[:12]] * 4
    assert len(call(store, "list_flows")) == 4


def test_persistent_memory_of_each_agent(pg_server: PostgresServer, schema: str) -> None:
    agent, other = uuid4(), uuid4()

    async def write() -> None:
        store = store_for(pg_server, schema)
        memory = store.persistent_memory()
        await memory.write(agent, "city", "Lisbon")
        await memory.write(agent, "food", "bacalhau")
        await memory.update(agent, "city", "Porto")
        await memory.write(other, "city", "Oslo")
        await memory.delete(agent, "food")
        await store.close()

    async def read() -> tuple[Any, ...]:
        store = store_for(pg_server, schema)  # another store, as another process would
        memory = store.persistent_memory()
        try:
            found = await memory.search(agent, "port")
            return (
                await memory.read(agent, "city"),
                await memory.read(agent, "food"),
                await memory.list_keys(agent),
                [(e.key, e.value, e.agent_id) for e in found],
                await memory.read(other, "city"),
            )
        finally:
            await store.close()

    asyncio.run(write())
    assert asyncio.run(read()) == ("Porto", None, ["city"], [("city", "Porto", agent)], "Oslo")


def test_saved_messages_last_until_a_commit_of_the_node(store: PostgresStore) -> None:
    record = _flow(store)
    node = name_id("n0")
    saved = [Message(MessageRole.USER, "saved")]
    call(store, "save_messages", record.flow_id, node, saved)
    legacy = NodeExecution(node, NodeStatus.FINISHED, visit=1, result="r")
    call(store, "save_node_execution", record.flow_id, node, legacy)
    assert call(store, "get_messages", record.flow_id, node) == saved  # 0.1.5's save keeps it
    committed = NodeExecution(
        node,
        NodeStatus.FINISHED,
        visit=2,
        result="c",
        messages=(Message(MessageRole.ASSISTANT, "c"),),
    )
    call(store, "commit", record.flow_id, Commit(record=committed))
    assert call(store, "get_messages", record.flow_id, node) == [
        Message(MessageRole.ASSISTANT, "c")
    ]


def test_prune_defaults_to_the_retention_setting_and_takes_many_batches(
    pg_server: PostgresServer, schema: str
) -> None:
    store = store_for(pg_server, schema, retention="1h")
    try:
        old = time.time() - 7200
        ended = [_flow(store, old) for _ in range(450)]  # more than two batches of 200
        for record in ended:
            _end(store, record, old)
        paused = _flow(store, old, status=FlowStatus.PAUSED)
        recent = _flow(store)
        _end(store, recent, time.time())
        assert call(store, "prune") == 450
        assert [r.flow_id for r in call(store, "list_flows")] == [recent.flow_id, paused.flow_id]
    finally:
        call(store, "close")
    no_retention = store_for(pg_server, schema)
    with pytest.raises(ValueError, match="prune\\(\\) needs an age: the store postgresql://"):
        call(no_retention, "prune")
    call(no_retention, "close")


def test_two_pruners_at_once_delete_each_flow_once(pg_server: PostgresServer, schema: str) -> None:
    store = store_for(pg_server, schema)
    old = time.time() - 7200
    for _ in range(600):
        _end(store, _flow(store, old), old)
    call(store, "close")
    counts: list[int] = []

    def prune() -> None:
        pruner = store_for(pg_server, schema)
        counts.append(call(pruner, "prune", timedelta(hours=1)))
        call(pruner, "close")

    threads = [threading.Thread(target=prune) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(counts) == 2
    assert sum(counts) == 600


def test_deleting_a_flow_removes_every_row_of_it_and_its_graph_last(
    pg_server: PostgresServer, store: PostgresStore, schema: str
) -> None:
    runner = FlowRunner(chain_graph(6), SimpleNodeRegistry({"echo": _echo}), store=store)
    kept, gone = runner.run("a"), runner.run("b")
    call(store, "save_messages", gone.flow_id, name_id("n0"), [Message(MessageRole.USER, "m")])
    call(store, "save_memory", gone.flow_id, "k", 1)
    assert call(store, "delete_flow", gone.flow_id) is True
    for table in FLOW_TABLES:
        sql = f"SELECT count(*) FROM {schema}.{table} WHERE flow_id = '{gone.flow_id}'"
        assert pg_server.admin_value(sql) == 0, table
    assert pg_server.admin_value(f"SELECT count(*) FROM {schema}.qm_graphs") == 1
    assert call(store, "delete_flow", kept.flow_id) is True
    assert pg_server.admin_value(f"SELECT count(*) FROM {schema}.qm_graphs") == 0
    # The graph is stored again by the next flow that needs it.
    assert runner.run("c").status is FlowStatus.COMPLETED


def test_a_new_schema_has_its_version_every_table_and_the_listing_indexes(
    pg_server: PostgresServer, store: PostgresStore, schema: str
) -> None:
    call(store, "open")
    version = f"SELECT value FROM {schema}.qm_meta WHERE key = 'schema_version'"
    assert pg_server.admin_value(version) == str(SCHEMA_VERSION)
    tables = pg_server.admin_rows(f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'")
    assert sorted(r[0] for r in tables) == sorted(TABLES)
    indexes = pg_server.admin_rows(
        f"SELECT indexdef FROM pg_indexes WHERE schemaname = '{schema}' "
        "AND tablename = 'qm_flows' ORDER BY indexname"
    )
    assert [r[0].split(" USING ")[1] for r in indexes] == [
        "btree (graph_hash)",
        "btree (status, updated_at)",
        "btree (updated_at)",
        "btree (flow_id)",
    ]


def test_three_hundred_flows_of_one_graph_store_it_once(
    pg_server: PostgresServer, store: PostgresStore, schema: str
) -> None:
    graph = chain_graph(50)
    for _ in range(300):
        now = time.time()
        call(store, "create_flow", FlowRecord(uuid4(), graph, "in", created_at=now, updated_at=now))
    assert pg_server.admin_value(f"SELECT count(*) FROM {schema}.qm_graphs") == 1
    other = store_for(pg_server, schema)  # another process reads it back
    try:
        (first,) = call(other, "list_flows", limit=1)
        assert first.graph == graph
    finally:
        call(other, "close")


def test_close_twice_then_use_again(store: PostgresStore) -> None:
    record = _flow(store)
    call(store, "close")
    call(store, "close")
    assert call(store, "get_flow", record.flow_id).flow_id == record.flow_id


def test_a_pool_of_one_serves_concurrent_flows(pg_server: PostgresServer, schema: str) -> None:
    async def slow_echo(ctx: Any) -> NodeResult:
        await asyncio.sleep(0.001)
        return _echo(ctx)

    store = store_for(pg_server, schema, pool_size=1)

    async def three() -> list[Any]:
        runner = FlowRunner(chain_graph(8), SimpleNodeRegistry({"echo": slow_echo}), store=store)
        try:
            return list(await asyncio.gather(*(runner.arun(f"f{i}") for i in range(3))))
        finally:
            await store.close()

    results = asyncio.run(three())
    assert [r.final_output for r in results] == [f"n5(n4(n3(n2(n1(n0(f{i}))))))" for i in range(3)]

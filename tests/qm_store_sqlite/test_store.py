"""Behaviour of the SQLite store beyond the conformance kit: atomic commits, waiting
for another connection's lock, several threads and loops on one store, persistent
memory, retention, and 0.1.5's import path."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest

from qm_store_sqlite import SQLiteStore, SQLiteStoreError
from quartermaster_engine import (
    AsyncDispatcher,
    ExecutionContext,
    FlowFinished,
    FlowRunner,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import (
    Activation,
    Commit,
    Delivery,
    FlowRecord,
    FlowStatus,
    FlowUpdate,
)
from quartermaster_engine.testing import build_graph, chain_graph
from quartermaster_engine.testing.graphs import name_id
from quartermaster_engine.types import Message, MessageRole

T = TypeVar("T")


def _echo(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def _chain_output(length: int, text: str) -> str:
    for i in range(length - 2):
        text = f"n{i}({text})"
    return text


def run(coro: Awaitable[T]) -> T:
    async def go() -> T:
        return await coro

    return asyncio.run(go())


async def _new_flow(store: SQLiteStore, **fields: Any) -> FlowRecord:
    now = time.time()
    record = FlowRecord(
        flow_id=uuid4(),
        graph=chain_graph(4),
        input="in",
        created_at=fields.pop("created_at", now),
        updated_at=fields.pop("updated_at", now),
        **fields,
    )
    await store.create_flow(record)
    return record


def _async(fn: Any) -> Any:
    """Run an ``async def`` test body on a fresh loop (no pytest-asyncio here)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


# -- commits --------------------------------------------------------------------------------------


def test_a_commit_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"

    async def scenario() -> None:
        store = SQLiteStore(path)
        try:
            flow = await _new_flow(store)
            fid = flow.flow_id
            first = Activation(name_id("n0"), 1)
            await store.commit(fid, Commit(enqueue=[first], memory={"kept": 1}))
            # Make the commit's last statement fail, after the others ran.
            db = sqlite3.connect(path, isolation_level=None)
            db.execute(
                "CREATE TRIGGER boom BEFORE INSERT ON qm_loop_exits "
                "BEGIN SELECT RAISE(ABORT, 'boom'); END"
            )
            db.close()
            doomed = Commit(
                first.key,
                NodeExecution(name_id("n0"), NodeStatus.FINISHED, result="x"),
                {"kept": 2, "new": 3},
                deliveries=[Delivery(name_id("n1"), 1, uuid4(), first.key)],
                enqueue=[Activation(name_id("n1"), 1, inputs=(first.key,))],
                loop_exits=[(name_id("n0"), uuid4())],
            )
            with pytest.raises(sqlite3.IntegrityError, match="boom"):
                await store.commit(fid, doomed)
            snap = await store.load_flow(fid)
            assert snap is not None
            assert snap.memory == {"kept": 1}
            assert snap.records == []
            assert [a.key for a in snap.pending] == [first.key]
            assert (snap.deliveries, snap.loop_exits) == ([], [])
        finally:
            await store.close()

    asyncio.run(scenario())


@_async
async def test_a_commit_that_cannot_be_stored_as_json_changes_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db")
    try:
        flow = await _new_flow(store)
        rec = NodeExecution(name_id("n0"), NodeStatus.FINISHED, visit=1, result="x")
        with pytest.raises(SQLiteStoreError) as err:
            await store.commit(flow.flow_id, Commit((name_id("n0"), 1), rec, {"when": object}))
        assert str(err.value) == (
            f"cannot store the outcome of node {name_id('n0')} (visit 1) of flow "
            f"{flow.flow_id} in {store.path}: Object of type type is not JSON serializable "
            "(flow memory and node output data must be JSON values)"
        )
        snap = await store.load_flow(flow.flow_id)
        assert snap is not None
        assert (snap.records, snap.memory) == ([], {})
    finally:
        await store.close()


def test_a_node_writing_a_value_that_is_not_json_fails_its_flow_clearly(tmp_path: Path) -> None:
    def bad(ctx: ExecutionContext) -> NodeResult:
        return NodeResult(output_text="x", data={"memory_updates": {"at": {1, 2}}})

    store = SQLiteStore(tmp_path / "flows.db")
    try:
        result = FlowRunner(chain_graph(3), SimpleNodeRegistry({"echo": bad}), store=store).run(
            "in"
        )
    finally:
        run(store.close())
    assert result.status is FlowStatus.FAILED
    assert result.error is not None
    assert "Object of type set is not JSON serializable" in result.error
    assert f"sqlite {store.path}" in result.error


@_async
async def test_commits_and_updates_of_an_unknown_flow_raise(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db")
    try:
        ghost = uuid4()
        with pytest.raises(FlowNotFoundError, match=str(ghost)):
            await store.commit(ghost, Commit(memory={"k": 1}))
        with pytest.raises(FlowNotFoundError, match=str(ghost)):
            await store.update_flow(ghost, FlowUpdate(FlowStatus.COMPLETED, time.time()))
        assert await store.get_all_memory(ghost) == {}
    finally:
        await store.close()


@_async
async def test_commits_refresh_the_flows_updated_at(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db")
    try:
        flow = await _new_flow(store, created_at=1000.0, updated_at=1000.0)
        before = time.time()
        await store.commit(flow.flow_id, Commit(memory={"k": 1}))
        record = await store.get_flow(flow.flow_id)
        assert record is not None
        assert record.created_at == 1000.0
        assert before <= record.updated_at <= time.time()
    finally:
        await store.close()


# -- another connection's write lock ------------------------------------------------------------


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


@_async
async def test_a_held_write_lock_is_waited_for_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    store = SQLiteStore(path, busy_timeout=30)
    try:
        flow = await _new_flow(store)
        blocker = _hold_write_lock(path)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticking = asyncio.create_task(ticker())
        commit = asyncio.create_task(store.commit(flow.flow_id, Commit(memory={"k": "v"})))
        await asyncio.sleep(0.3)
        assert not commit.done()  # it waits for the lock...
        assert ticks >= 5  # ...while the loop goes on
        blocker.execute("COMMIT")
        blocker.close()
        await asyncio.wait_for(commit, 30)
        ticking.cancel()
        assert await store.get_all_memory(flow.flow_id) == {"k": "v"}
    finally:
        await store.close()


@_async
async def test_a_lock_held_past_busy_timeout_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    store = SQLiteStore(path, busy_timeout=0.2)
    try:
        flow = await _new_flow(store)
        blocker = _hold_write_lock(path)
        try:
            with pytest.raises(SQLiteStoreError) as err:
                await store.commit(flow.flow_id, Commit(memory={"k": "v"}))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert str(err.value) == (
            f"the SQLite store {path} stayed locked by another connection for longer than "
            "its busy_timeout (0.2 s): database is locked"
        )
        assert await store.get_all_memory(flow.flow_id) == {}
    finally:
        await store.close()


# -- one store, several threads and loops --------------------------------------------------------


def test_one_store_serves_several_threads_and_loops_at_once(tmp_path: Path) -> None:
    async def slow_echo(ctx: ExecutionContext) -> NodeResult:
        await asyncio.sleep(0)
        return _echo(ctx)

    store = SQLiteStore(tmp_path / "flows.db")
    registry = SimpleNodeRegistry({"echo": slow_echo})
    runner = FlowRunner(chain_graph(30), registry, store=store)
    concurrent = FlowRunner(chain_graph(30), registry, store=store, dispatcher=AsyncDispatcher())
    results: dict[str, Any] = {}
    start = threading.Barrier(3)

    def in_thread(name: str) -> None:
        start.wait()
        results[name] = runner.run(name)  # this thread's own loop

    async def in_loop() -> None:
        start.wait()
        events = [e async for e in runner.run_async("stream")]
        results["stream"] = events[-1]
        many = await asyncio.gather(*(concurrent.arun(f"gather{i}") for i in range(4)))
        results.update({f"gather{i}": r for i, r in enumerate(many)})
        # run() from inside a running loop goes through the engine's own loop thread.
        results["portal"] = runner.run("portal")

    threads = [threading.Thread(target=in_thread, args=(f"thread{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    asyncio.run(in_loop())
    for thread in threads:
        thread.join(60)
    try:
        names = ["thread0", "thread1", "gather0", "gather1", "gather2", "gather3", "portal"]
        for name in names:
            assert results[name].status is FlowStatus.COMPLETED, results[name]
            assert results[name].final_output == _chain_output(30, name)
            snap = run(store.load_flow(results[name].flow_id))
            assert len(snap.records) == 30
        finished = results["stream"]
        assert isinstance(finished, FlowFinished)
        assert finished.final_output == _chain_output(30, "stream")
        assert len(run(store.list_flows())) == 8
    finally:
        run(store.close())


@_async
async def test_close_twice_then_use_again(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db")
    flow = await _new_flow(store)
    await store.close()
    await store.close()
    await store.commit(flow.flow_id, Commit(memory={"after": "close"}))
    assert await store.get_all_memory(flow.flow_id) == {"after": "close"}
    await store.close()


# -- persistent memory ---------------------------------------------------------------------------


@_async
async def test_persistent_memory_of_each_agent(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db")
    agent, other = uuid4(), uuid4()
    try:
        memory = store.persistent_memory()
        assert store.persistent_memory() is memory
        assert await memory.read(agent, "name") is None
        await memory.write(agent, "name", "Ada")
        await memory.write(agent, "City", "Paris")
        await memory.write(other, "name", "Bob")
        await memory.update(agent, "name", "Ada L.")
        await memory.update(agent, "lang", "fr")  # created when absent
        assert await memory.read(agent, "name") == "Ada L."
        assert await memory.list_keys(agent) == ["name", "City", "lang"]
        found = await memory.search(agent, "PAR")
        assert [(e.key, e.value, e.agent_id) for e in found] == [("City", "Paris", agent)]
        assert [e.key for e in await memory.search(agent, "a", limit=2)] == ["name", "City"]
        await memory.delete(agent, "City")
        await memory.delete(agent, "never-set")
        assert await memory.list_keys(agent) == ["name", "lang"]
        assert await memory.list_keys(other) == ["name"]
    finally:
        await store.close()
    reopened = SQLiteStore(tmp_path / "flows.db")
    try:
        assert await reopened.persistent_memory().read(agent, "name") == "Ada L."
    finally:
        await reopened.close()


# -- histories, retention, deletion -------------------------------------------------------------


@_async
async def test_saved_messages_last_until_a_commit_of_the_node(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db")
    try:
        flow = await _new_flow(store)
        node = name_id("n0")
        await store.save_messages(flow.flow_id, node, [Message(MessageRole.USER, "saved")])
        await store.append_message(flow.flow_id, node, Message(MessageRole.ASSISTANT, "more"))
        # A 0.1.5-style record does not replace the saved history...
        await store.save_node_execution(
            flow.flow_id, node, NodeExecution(node, NodeStatus.FINISHED, result="legacy")
        )
        got = await store.get_messages(flow.flow_id, node)
        assert [(m.role, m.content) for m in got] == [
            (MessageRole.USER, "saved"),
            (MessageRole.ASSISTANT, "more"),
        ]
        # ...a committed one does.
        committed = NodeExecution(
            node,
            NodeStatus.FINISHED,
            visit=2,
            result="out",
            messages=(Message(MessageRole.USER, "in"), Message(MessageRole.ASSISTANT, "out")),
        )
        await store.commit(flow.flow_id, Commit(record=committed))
        got = await store.get_messages(flow.flow_id, node)
        assert [(m.role, m.content) for m in got] == [
            (MessageRole.USER, "in"),
            (MessageRole.ASSISTANT, "out"),
        ]
        assert await store.get_node_execution(flow.flow_id, node) == committed
        # A later 0.1.5-style record of the node is its latest: its history is read.
        legacy = NodeExecution(
            node,
            NodeStatus.FINISHED,
            visit=3,
            result="l",
            messages=(Message(MessageRole.USER, "l"),),
        )
        await store.save_node_execution(flow.flow_id, node, legacy)
        got = await store.get_messages(flow.flow_id, node)
        assert [(m.role, m.content) for m in got] == [(MessageRole.USER, "l")]
    finally:
        await store.close()


@_async
async def test_prune_defaults_to_the_retention_setting(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db", retention="1h")
    assert store.retention == timedelta(hours=1)
    try:
        old = time.time() - 7200
        ended = await _new_flow(store, created_at=old, updated_at=old)
        await store.update_flow(ended.flow_id, FlowUpdate(FlowStatus.FAILED, old, error="x"))
        recent = await _new_flow(store)
        await store.update_flow(recent.flow_id, FlowUpdate(FlowStatus.COMPLETED, time.time()))
        assert await store.prune() == 1
        assert [f.flow_id for f in await store.list_flows()] == [recent.flow_id]
        assert await store.prune(timedelta(0)) == 1
        assert await store.list_flows() == []
    finally:
        await store.close()


@_async
async def test_prune_deletes_more_flows_than_one_batch(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db")
    try:
        old = time.time() - 100
        for _ in range(450):  # PRUNE_BATCH is 200
            flow = await _new_flow(store, created_at=old, updated_at=old)
            await store.update_flow(flow.flow_id, FlowUpdate(FlowStatus.COMPLETED, old))
        paused = await _new_flow(store, created_at=old, updated_at=old)
        await store.update_flow(paused.flow_id, FlowUpdate(FlowStatus.PAUSED, old))
        assert await store.prune(timedelta(seconds=10)) == 450
        assert [f.flow_id for f in await store.list_flows()] == [paused.flow_id]
    finally:
        await store.close()


@_async
async def test_prune_without_an_age_or_retention_says_so(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "flows.db")
    assert store.retention is None
    with pytest.raises(ValueError, match="no retention") as err:
        await store.prune()
    assert str(store.path) in str(err.value)


def test_deleting_a_flow_removes_every_row_of_it(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"

    def ask(ctx: ExecutionContext) -> NodeResult:
        return NodeResult(wait_for_user=True, user_prompt="?")

    store = SQLiteStore(path)
    kept = FlowRunner(chain_graph(5), SimpleNodeRegistry({"echo": _echo}), store=store).run("k")
    paused = FlowRunner(chain_graph(5), SimpleNodeRegistry({"echo": ask}), store=store).run("p")
    assert paused.status is FlowStatus.PAUSED
    fid = paused.flow_id
    run(store.save_memory(fid, "k", 1))
    run(store.save_messages(fid, name_id("n0"), [Message(MessageRole.USER, "m")]))
    assert run(store.delete_flow(fid)) is True
    assert run(store.delete_flow(fid)) is False
    run(store.close())

    db = sqlite3.connect(path)
    try:
        for table in ("qm_flows", "qm_records", "qm_memory", "qm_messages", "qm_pending"):
            rows = db.execute(f"SELECT flow_id FROM {table}").fetchall()
            assert {UUID(bytes=r[0]) for r in rows} <= {kept.flow_id}, table
        assert db.execute("SELECT count(*) FROM qm_records").fetchone() == (5,)
    finally:
        db.close()


def test_record_counts_per_flow_and_status(tmp_path: Path) -> None:
    def flaky(ctx: ExecutionContext) -> NodeResult:
        if ctx.current_node.name == "n1" and ctx.attempt == 1:
            return NodeResult(success=False, error="once")
        return _echo(ctx)

    retry = {"type": "echo", "error_handling": "Retry", "max_retries": 1, "retry_delay": 0}
    graph = build_graph(
        {"Start": "Start1", "n0": "echo", "n1": retry, "n2": "echo", "End": "End1"},
        [("Start", "n0"), ("n0", "n1"), ("n1", "n2"), ("n2", "End")],
    )
    store = SQLiteStore(tmp_path / "flows.db")
    try:
        runner = FlowRunner(graph, SimpleNodeRegistry({"echo": flaky}), store=store)
        retried = runner.run("a")
        plain = FlowRunner(chain_graph(3), SimpleNodeRegistry({"echo": _echo}), store=store).run(
            "b"
        )
        ghost = uuid4()
        counts = run(store.record_counts([retried.flow_id, plain.flow_id, ghost]))
    finally:
        run(store.close())
    assert counts == {
        retried.flow_id: {"finished": 5},  # n1 failed once, then finished: its state now
        plain.flow_id: {"finished": 3},
        ghost: {},
    }


# -- names and 0.1.5's import path ---------------------------------------------------------------


def test_describe_names_the_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore("flows.db", synchronous="full", busy_timeout=2.5)
    assert store.path == tmp_path / "flows.db"
    assert store.describe() == f"sqlite {tmp_path / 'flows.db'}"
    assert (store.synchronous, store.busy_timeout, store.retention) == ("FULL", 2.5, None)


def test_the_0_1_5_import_path_and_db_path_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quartermaster_engine.stores.sqlite_store import SQLiteStore as LegacySQLiteStore

    monkeypatch.chdir(tmp_path)
    store = LegacySQLiteStore(db_path="my_agent.db")
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "my_agent.db"
    result = FlowRunner(chain_graph(4), SimpleNodeRegistry({"echo": _echo}), store=store).run("x")
    store.close()  # 0.1.5's close() is a plain call
    reopened = LegacySQLiteStore("my_agent.db")
    try:
        snap = run(reopened.load_flow(result.flow_id))
        assert snap.flow.final_output == "n1(n0(x))"
    finally:
        reopened.close()


def test_the_0_1_5_import_path_without_the_plugin_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['qm_store_sqlite'] = None\n"
        "from quartermaster_engine.stores.sqlite_store import SQLiteStore\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "ImportError: SQLiteStore now ships in its own distribution: pip install qm-store-sqlite"
    )

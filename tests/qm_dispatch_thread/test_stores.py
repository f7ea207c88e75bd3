"""Threaded fan-outs on the durable stores: every commit lands, once (0.1.5's SQLite
store failed 9 runs in 10 under its ThreadDispatcher)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from thread_support import RedisServer, fan_graph

from qm_dispatch_thread import ThreadDispatcher
from qm_store_redis import RedisStore
from qm_store_sqlite import SQLiteStore
from quartermaster_engine import (
    ExecutionContext,
    FlowResult,
    FlowRunner,
    FlowStatus,
    NodeResult,
    SimpleNodeRegistry,
)

WIDTH = 30
JOINED = "\n".join(f"b{i}" for i in range(WIDTH))


class Calls:
    """Blocking executors that write memory, and the join calls they lead to."""

    def __init__(self) -> None:
        self.joins: list[str] = []
        self.lock = threading.Lock()
        self.registry = SimpleNodeRegistry({"branch": self.branch, "join": self.join})

    def branch(self, ctx: ExecutionContext) -> NodeResult:
        time.sleep(0.001)
        name = ctx.current_node.name
        return NodeResult(output_text=name, data={"memory_updates": {name: int(name[1:])}})

    def join(self, ctx: ExecutionContext) -> str:
        with self.lock:
            self.joins.append(ctx.input_text)
        return f"joined {len(ctx.predecessor_outputs)}"


async def _stored(store: Any, flow_id: UUID) -> tuple[Any, ...]:
    """What a fresh store object (as another process would open it) sees of a flow."""
    try:
        flow = await store.get_flow(flow_id)
        snapshot = await store.load_flow(flow_id)
        return (
            flow.status,
            flow.final_output,
            len(snapshot.records),
            snapshot.memory,
            snapshot.pending,
            snapshot.deliveries,
        )
    finally:
        await store.close()


def _check_runs(results: list[FlowResult], calls: Calls, fresh_store: Any) -> None:
    assert [(r.status, r.final_output) for r in results] == [
        (FlowStatus.COMPLETED, f"joined {WIDTH}")
    ] * len(results)
    assert calls.joins == [JOINED] * len(results)
    memory = {f"b{i}": i for i in range(WIDTH)}
    for result in results:
        assert asyncio.run(_stored(fresh_store(), result.flow_id)) == (
            FlowStatus.COMPLETED,
            f"joined {WIDTH}",
            WIDTH + 3,  # Start, the branches, the join, End: one record each
            memory,
            [],
            [],
        )


def test_a_threaded_fan_out_on_sqlite_20_times(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    calls = Calls()
    runner = FlowRunner.from_config(
        fan_graph(WIDTH),
        {"store": {"name": "sqlite", "path": str(path)},
         "dispatcher": {"name": "thread", "max_workers": 8}},
        node_registry=calls.registry,
    )  # fmt: skip
    assert isinstance(runner.store, SQLiteStore)
    assert isinstance(runner.dispatcher, ThreadDispatcher)
    try:
        results = [runner.run("x") for _ in range(20)]
    finally:
        runner.close()
    _check_runs(results, calls, lambda: SQLiteStore(path))


def test_two_threads_on_one_sqlite_file_share_one_dispatcher(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    calls = Calls()
    dispatcher = ThreadDispatcher(max_workers=8)
    results: dict[int, list[FlowResult]] = {}

    def worker(n: int) -> None:
        store = SQLiteStore(path)  # one store object per thread, as per process
        runner = FlowRunner(fan_graph(WIDTH), calls.registry, store=store, dispatcher=dispatcher)
        results[n] = [runner.run("x") for _ in range(10)]
        asyncio.run(store.close())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    dispatcher.shutdown()
    _check_runs([*results[0], *results[1]], calls, lambda: SQLiteStore(path))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_a_threaded_fan_out_on_redis_20_times(redis_server: RedisServer) -> None:
    prefix = f"qm-thread-{uuid4().hex[:8]}"
    calls = Calls()
    runner = FlowRunner.from_config(
        fan_graph(WIDTH),
        {"store": {"name": "redis", "url": redis_server.url, "key_prefix": prefix},
         "dispatcher": {"name": "thread", "max_workers": 8}},
        node_registry=calls.registry,
    )  # fmt: skip
    assert isinstance(runner.store, RedisStore)
    try:
        results = [runner.run("x") for _ in range(20)]
    finally:
        runner.close()
    _check_runs(results, calls, lambda: RedisStore(redis_server.url, key_prefix=prefix))

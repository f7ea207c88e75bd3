"""What the conformance kit does not pin down: idempotent join deliveries, several
event loops, closing, persistent memory across processes, the plugin."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from typing import Any
from uuid import UUID, uuid4

import pytest
from qm_redis_support import RedisServer, store_for

from qm_store_redis import RedisSettings, RedisStore
from qm_store_redis.plugin import create_store, qm_register_stores
from quartermaster_engine import FlowRunner
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import Commit, Delivery, FlowRecord, FlowStatus
from quartermaster_engine.testing import call, chain_graph
from quartermaster_engine.testing.graphs import name_id


def _new_flow(store: RedisStore) -> UUID:
    now = time.time()
    record = FlowRecord(uuid4(), chain_graph(4), "in", created_at=now, updated_at=now)
    call(store, "create_flow", record)
    return record.flow_id


def _echo(ctx: Any) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


CHAIN_OUT = "n1(n0(in))"


def test_a_repeated_delivery_of_an_edge_counts_once(redis_server: RedisServer, prefix: str) -> None:
    store = store_for(redis_server, prefix)
    try:
        fid = _new_flow(store)
        target, first, second = name_id("n1"), uuid4(), uuid4()
        one = Delivery(target, 1, first, (name_id("n0"), 1))
        call(store, "commit", fid, Commit(deliveries=[one, one]))
        call(store, "commit", fid, Commit(deliveries=[one, Delivery(target, 1, second, None)]))
        call(store, "commit", fid, Commit(deliveries=[Delivery(target, 2, first, None)]))
        snap = call(store, "load_flow", fid)
        assert snap.deliveries == [
            one,
            Delivery(target, 1, second, None),
            Delivery(target, 2, first, None),
        ]
    finally:
        call(store, "close")


def test_commit_to_a_missing_flow_writes_nothing(redis_server: RedisServer, prefix: str) -> None:
    store = store_for(redis_server, prefix)
    client = redis_server.client()
    try:
        missing = uuid4()
        with pytest.raises(FlowNotFoundError, match=f"no flow {missing} in redis "):
            call(store, "commit", missing, Commit(memory={"k": 1}))
        assert list(client.scan_iter(match=f"{prefix}:*")) == []
    finally:
        client.close()
        call(store, "close")


def test_one_store_serves_several_event_loops_and_closes_them_all(
    redis_server: RedisServer, prefix: str
) -> None:
    store = store_for(redis_server, prefix)
    runner = FlowRunner(chain_graph(4), SimpleNodeRegistry({"echo": _echo}), store=store)
    results = [runner.run("in")]  # this thread's loop

    async def inside_a_running_loop() -> None:
        results.append(runner.run("in"))  # the engine's background loop
        results.append(await runner.arun("in"))  # this asyncio.run loop

    asyncio.run(inside_a_running_loop())
    thread = threading.Thread(target=lambda: results.append(runner.run("in")))
    thread.start()
    thread.join()
    assert [r.final_output for r in results] == [CHAIN_OUT] * 4
    # asyncio.run closed its loop's client on the way out; three loops remain.
    assert len(store._clients) == 3
    call(store, "close")
    call(store, "close")  # safe twice
    # This thread's client closed at once, the background loop's as soon as that loop
    # runs; the finished thread's idle loop keeps its client until that loop shuts down.
    deadline = time.monotonic() + 5
    while len(store._clients) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(store._clients) == 1
    # A closed store reconnects when used again.
    assert call(store, "get_flow", results[0].flow_id).status is FlowStatus.COMPLETED
    call(store, "close")


def test_persistent_memory_survives_the_process(redis_server: RedisServer, prefix: str) -> None:
    agent = uuid4()
    script = f"""
import asyncio
from uuid import UUID
from qm_store_redis import RedisStore

async def main():
    store = RedisStore({redis_server.url!r}, key_prefix={prefix!r})
    memory = store.persistent_memory()
    agent = UUID({str(agent)!r})
    await memory.write(agent, "tone", "formal")
    await memory.write(agent, "City", "Lyon")
    await memory.write(agent, "drop", "x")
    await memory.delete(agent, "drop")
    await memory.delete(agent, "never")
    await store.close()

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    store = store_for(redis_server, prefix)
    memory = store.persistent_memory()
    try:
        assert call(memory, "read", agent, "tone") == "formal"
        assert call(memory, "read", agent, "drop") is None
        assert call(memory, "read", uuid4(), "tone") is None
        assert call(memory, "list_keys", agent) == ["City", "tone"]
        created = call(memory, "search", agent, "form")[0].created_at
        call(memory, "update", agent, "tone", "casual")
        call(memory, "update", agent, "new", "made")
        [entry] = call(memory, "search", agent, "CAS")
        assert (entry.key, entry.value, entry.agent_id) == ("tone", "casual", agent)
        assert entry.created_at == created < entry.updated_at
        assert [e.key for e in call(memory, "search", agent, "")] == ["City", "new", "tone"]
        assert [e.key for e in call(memory, "search", agent, "", limit=2)] == ["City", "new"]
        assert [e.key for e in call(memory, "search", agent, "lyon")] == ["City"]
    finally:
        call(store, "close")


def test_plugin_registers_the_redis_store(redis_server: RedisServer, prefix: str) -> None:
    seen: dict[str, Any] = {}

    def register(
        name: str, factory: Any, *, config_model: Any = None, description: str = ""
    ) -> None:
        seen.update(name=name, factory=factory, config_model=config_model)

    qm_register_stores(register)
    assert seen == {"name": "redis", "factory": create_store, "config_model": RedisSettings}
    settings = RedisSettings.model_validate(
        {"url": redis_server.url, "key_prefix": prefix, "ttl_seconds": 60}
    )
    store = create_store(settings)
    assert (store.describe(), store.key_prefix, store.ttl_seconds) == (
        f"redis {redis_server.url}",
        prefix,
        60,
    )
    with pytest.raises(ValueError, match="key_prefix"):
        RedisSettings.model_validate({"key_prefix": "qm{x}"})
    with pytest.raises(ValueError, match="extra"):
        RedisSettings.model_validate({"host": "localhost"})
    assert RedisSettings().model_dump() == {
        "url": "redis://localhost:6379/0",
        "key_prefix": "qm",
        "ttl_seconds": None,
        "cluster": False,
        "timeout_seconds": 5.0,
    }


def test_output_that_is_not_json_fails_the_run_naming_the_node(
    redis_server: RedisServer, prefix: str
) -> None:
    def odd(ctx: Any) -> NodeResult:
        return NodeResult(output_text="x", data={"handle": object()})

    store = store_for(redis_server, prefix)
    try:
        runner = FlowRunner(chain_graph(3), SimpleNodeRegistry({"echo": odd}), store=store)
        result = runner.run("in")
        assert result.status is FlowStatus.FAILED
        assert result.error == (
            f"node 'n0' ({name_id('n0')}) produced data the store (redis {redis_server.url}) "
            f"cannot save: the record of node {name_id('n0')} cannot be stored as JSON: "
            "Type is not JSON serializable: object"
        )
        # Recovering would produce the same data again: the flow is recorded as failed.
        assert call(store, "get_flow", result.flow_id).status is FlowStatus.FAILED
    finally:
        call(store, "close")

"""Key layout: one Cluster slot per flow, the prefix on every key, TTL once a flow ends.

A single redis-server in cluster mode owning all 16384 slots is a real Redis
Cluster: it rejects any multi-key command or script whose keys span slots
(CROSSSLOT), so the whole conformance kit runs on it with the plain client.
With ``cluster=True`` the kit runs again on a three-node cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from qm_redis_support import RedisClusterOfThree, RedisServer, store_for, unique_prefix

from qm_store_redis import RedisStore
from quartermaster_engine import FlowRunner
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing import StoreContract, build_graph, call, chain_graph


@pytest.fixture(scope="module")
def cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-cluster"), cluster=True).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of the test's own: every key in it was written by this test."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


class TestRedisStoreOnACluster(StoreContract):
    @pytest.fixture
    def make_store(self, cluster_server: RedisServer, prefix: str) -> Callable[[], Any]:
        return lambda: store_for(cluster_server, prefix)


def _echo(ctx: Any) -> NodeResult:
    return NodeResult(
        output_text=f"{ctx.current_node.name}({ctx.input_text})",
        data={"memory_updates": {ctx.current_node.name: len(ctx.input_text)}},
    )


def _ask(ctx: Any) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="ok?")
    return NodeResult(output_text=ctx.user_input)


REGISTRY = SimpleNodeRegistry({"echo": _echo, "ask": _ask})


def _diamond() -> Any:
    return build_graph(
        {
            "Start": "Start1",
            "A": "echo",
            "B": "echo",
            "J": {"type": "echo", "traverse_in": "AwaitAll"},
            "End": "End1",
        },
        [("Start", "A"), ("Start", "B"), ("A", "J"), ("B", "J"), ("J", "End")],
    )


def _flow_keys(client: Any, prefix: str, flow_id: UUID) -> list[str]:
    return sorted(client.scan_iter(match=f"{prefix}:{{{flow_id}}}:*"))


def test_every_key_of_a_flow_is_in_its_flow_id_slot(cluster_server: RedisServer) -> None:
    prefix = unique_prefix()
    store = store_for(cluster_server, prefix)
    client = cluster_server.client()
    try:
        result = FlowRunner(_diamond(), REGISTRY, store=store).run("in")
        assert result.final_output == "J(A(in)\nB(in))"
        keys = _flow_keys(client, prefix, result.flow_id)
        assert [k.rsplit(":", 1)[1] for k in keys] == ["events", "flow", "latest", "mem", "recs"]
        slot = client.cluster("KEYSLOT", str(result.flow_id))
        assert {client.cluster("KEYSLOT", k) for k in keys} == {slot}
    finally:
        client.close()
        call(store, "close")


def test_every_key_carries_the_prefix(fresh_server: RedisServer) -> None:
    store = store_for(fresh_server, "acme-qm")
    client = fresh_server.client()
    try:
        runner = FlowRunner(_diamond(), REGISTRY, store=store)
        done = runner.run("in")
        memory = store.persistent_memory()
        call(memory, "write", done.flow_id, "k", "v")
        keys = sorted(client.scan_iter())
        tagged = f"{{{done.flow_id}}}"
        graph_keys = [k for k in keys if k.startswith("acme-qm:graph:")]
        assert keys == sorted(
            [
                "acme-qm:flows",
                f"acme-qm:agent:{tagged}",
                *graph_keys,
                *(
                    f"acme-qm:{tagged}:{part}"
                    for part in ("flow", "mem", "recs", "latest", "events")
                ),
            ]
        )
        assert len(graph_keys) == 2  # the graph and the set of flows using it
    finally:
        client.close()
        call(store, "close")


def test_keys_of_an_ended_flow_expire_after_ttl(redis_server: RedisServer, prefix: str) -> None:
    store = store_for(redis_server, prefix, ttl_seconds=300)
    client = redis_server.client()
    graph = build_graph(
        {"Start": "Start1", "A": "echo", "Q": "ask", "End": "End1"},
        [("Start", "A"), ("A", "Q"), ("Q", "End")],
    )
    try:
        runner = FlowRunner(graph, REGISTRY, store=store)
        paused = runner.run("in")
        assert paused.status is FlowStatus.PAUSED
        keys = _flow_keys(client, prefix, paused.flow_id)
        assert [k.rsplit(":", 1)[1] for k in keys] == [
            "events",
            "flow",
            "latest",
            "mem",
            "pending",
            "recs",
        ]
        # Paused is not ended: nothing expires while a person may still answer.
        assert {client.pttl(k) for k in keys} == {-1}
        graph_key = next(iter(client.scan_iter(match=f"{prefix}:graph:*}}")))

        other = runner.run("second")  # a second flow on the same graph, still paused
        done = runner.resume(paused.flow_id, "yes")
        assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "yes")
        keys = _flow_keys(client, prefix, paused.flow_id)
        assert [k.rsplit(":", 1)[1] for k in keys] == ["events", "flow", "latest", "mem", "recs"]
        for key in keys:
            assert 299_000 < client.pttl(key) <= 300_000, key
        # The shared graph stays as long as a flow using it has no expiry.
        assert client.pttl(graph_key) == -1
        assert runner.resume(other.flow_id, "ok").status is FlowStatus.COMPLETED
        assert 299_000 < client.pttl(graph_key) <= 300_000
        assert {client.pttl(k) for k in _flow_keys(client, prefix, other.flow_id)} != {-1}
    finally:
        client.close()
        call(store, "close")


def test_expired_flows_leave_listing_and_their_graph_goes(
    redis_server: RedisServer, prefix: str
) -> None:
    store = store_for(redis_server, prefix, ttl_seconds=0.2)
    client = redis_server.client()
    try:
        result = FlowRunner(chain_graph(4), REGISTRY, store=store).run("in")
        assert call(store, "get_flow", result.flow_id).status is FlowStatus.COMPLETED
        time.sleep(0.3)
        assert call(store, "get_flow", result.flow_id) is None
        assert call(store, "list_flows") == []
        assert sorted(client.scan_iter(match=f"{prefix}:*")) == [f"{prefix}:flows"]
    finally:
        client.close()
        call(store, "close")


@pytest.fixture(scope="module")
def three_node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterOfThree]:
    cluster = RedisClusterOfThree(tmp_path_factory.mktemp("redis-cluster3")).start()
    yield cluster
    cluster.stop()


class TestRedisStoreWithTheClusterClient(StoreContract):
    """``cluster=True`` on a real three-node Redis Cluster: flows land on
    different nodes, each flow's commits on the node owning its slot."""

    @pytest.fixture
    def make_store(self, three_node_cluster: RedisClusterOfThree, prefix: str) -> Callable[[], Any]:
        return lambda: RedisStore(three_node_cluster.url, key_prefix=prefix, cluster=True)


def test_flows_spread_over_the_nodes_of_a_cluster(three_node_cluster: RedisClusterOfThree) -> None:
    prefix = unique_prefix()
    store = RedisStore(three_node_cluster.url, key_prefix=prefix, cluster=True, ttl_seconds=60)
    try:
        runner = FlowRunner(_diamond(), REGISTRY, store=store)
        results = [runner.run(f"in{i}") for i in range(12)]
        assert [r.final_output for r in results] == [f"J(A(in{i})\nB(in{i}))" for i in range(12)]
        owners = {three_node_cluster.keyslot_owner(str(r.flow_id)) for r in results}
        assert len(owners) > 1  # 12 flows on one node of three: about 1 chance in 88,000
        listed = call(store, "list_flows", status=FlowStatus.COMPLETED)
        assert sorted(r.flow_id for r in listed) == sorted(r.flow_id for r in results)
        snap = call(store, "load_flow", results[0].flow_id)
        assert [len(snap.records), snap.memory] == [5, {"A": 3, "B": 3, "J": 13}]
    finally:
        call(store, "close")

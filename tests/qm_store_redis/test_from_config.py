"""The store as users get it from configuration: entry-point discovery and from_config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qm_redis_support import RedisServer

from qm_store_redis import RedisStore
from quartermaster_engine import FlowRunner
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.plugins.loader import load_plugins
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing import call, chain_graph


def _echo(ctx: Any) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def test_the_entry_point_registers_redis() -> None:
    registration = load_plugins().stores.get("redis")
    assert registration.origin.distribution == "qm-store-redis"
    assert registration.config_model.__name__ == "RedisSettings"


def test_from_config_dict_builds_a_working_store(redis_server: RedisServer, prefix: str) -> None:
    config = {"store": {"name": "redis", "url": redis_server.url, "key_prefix": prefix}}
    with FlowRunner.from_config(
        chain_graph(4), config, node_registry=SimpleNodeRegistry({"echo": _echo})
    ) as runner:
        assert isinstance(runner.store, RedisStore)
        assert runner.store.describe() == f"redis {redis_server.url}"
        result = runner.run("in")
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "n1(n0(in))")
    reopened = RedisStore(redis_server.url, key_prefix=prefix)
    try:
        assert call(reopened, "get_flow", result.flow_id).status is FlowStatus.COMPLETED
    finally:
        call(reopened, "close")


def test_from_config_toml_file(redis_server: RedisServer, prefix: str, tmp_path: Path) -> None:
    path = tmp_path / "qm.toml"
    path.write_text(
        f'[store]\nname = "redis"\nurl = "{redis_server.url}"\n'
        f'key_prefix = "{prefix}"\nttl_seconds = 120\n'
    )
    runner = FlowRunner.from_config(
        chain_graph(4), path, node_registry=SimpleNodeRegistry({"echo": _echo})
    )
    try:
        assert (runner.store.key_prefix, runner.store.ttl_seconds) == (prefix, 120)
        assert runner.run("in").final_output == "n1(n0(in))"
    finally:
        runner.close()

"""The in-process slots of an engine whose store keeps none (the memory store) keep
the same contract as a store's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from quartermaster_engine.runner.key_limits import KeyLimits, LocalSlots, Rule
from quartermaster_engine.stores.memory_store import InMemoryStore
from quartermaster_engine.testing.slots_contract import SlotsContract


class TestLocalSlots(SlotsContract):
    @pytest.fixture
    def store(self) -> LocalSlots:
        return LocalSlots()

    @pytest.fixture
    def make_store(self, store: LocalSlots) -> Callable[[], Any]:
        return lambda: store  # one process: every caller shares its table


def test_patterns_match_keys_after_exact_ones() -> None:
    limits = KeyLimits({"llm:openai:gpt-4o": 8, "llm:openai:*": 3, "tenant:*": 1}, None, 30.0)
    assert isinstance(limits.slots, LocalSlots)
    assert not limits.shared
    assert limits.limit_of("llm:openai:gpt-4o") == Rule(8)
    assert limits.limit_of("llm:openai:gpt-4o-mini") == Rule(3)
    assert limits.limit_of("tenant:acme") == Rule(1)
    assert limits.limit_of("llm:anthropic:claude") is None
    assert KeyLimits.of({}, InMemoryStore(), 30.0) is None


def test_a_nodes_metadata_limit_keys_limit_its_activations() -> None:
    import asyncio

    from quartermaster_engine import Engine, NodeResult, SimpleNodeRegistry
    from quartermaster_engine.testing.graphs import build_graph

    running = {"now": 0, "most": 0}

    async def work(ctx: Any) -> NodeResult:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        await asyncio.sleep(0.01)
        running["now"] -= 1
        return NodeResult(output_text="done")

    def graph(metadata: dict[str, Any]) -> Any:
        nodes = {"Start": "Start1", "W": {"type": "work", "metadata": metadata}, "End": "End1"}
        return build_graph(nodes, [("Start", "W"), ("W", "End")])

    async def run(metadata: dict[str, Any]) -> int:
        running["most"] = 0
        registry = SimpleNodeRegistry({"work": work})
        async with Engine(registry=registry, key_limits={"tenant:*": 2}) as engine:
            done = await asyncio.gather(*(engine.run(graph(metadata), "x") for _ in range(8)))
        assert [r.status.value for r in done] == ["completed"] * 8
        return running["most"]

    assert asyncio.run(run({"limit_keys": ["tenant:acme"]})) == 2
    assert asyncio.run(run({"limit_keys": ["other:acme"]})) == 8  # no limit matches
    assert asyncio.run(run({})) == 8

"""Forks against the original run, on random graphs (hypothesis): fan-outs,
decisions, AwaitAll and AwaitFirst joins, nodes failing with SKIP or CONTINUE
(the graphs of tests/core/test_routing_properties.py). A fork at every
checkpoint, run on, commits the same records and ends with the same status
and output as the original."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from test_routing_properties import Shape, dags, graph_of, registry

from quartermaster_engine import Engine, InMemoryStore


def _records(history: list[Any]) -> list[tuple[Any, ...]]:
    return [(c.node_name, c.visit, c.attempt, c.outcome, c.result, c.error) for c in history]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_a_fork_at_any_checkpoint_ends_as_the_original(shape: Shape) -> None:
    async def go() -> None:
        ran: Counter[str] = Counter()
        async with Engine(InMemoryStore(), registry=registry(ran)) as engine:
            original = await engine.run(graph_of(shape), "x")
            history = await engine.history(original.flow_id)
            for at in range(len(history) + 1):
                fid = await engine.fork(original.flow_id, at=at)
                forked = await engine.recover(fid)
                assert (forked.status, forked.final_output, forked.error) == (
                    original.status,
                    original.final_output,
                    original.error,
                ), at
                assert _records(await engine.history(fid)) == _records(history), at

    asyncio.run(go())

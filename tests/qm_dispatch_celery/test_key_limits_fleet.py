"""Concurrency limits per key on a Celery fleet: 4 ``qm worker`` processes (8 worker
threads) run 200 LLM activations against the LLM pack's fake OpenAI-compatible
server, which counts the requests it answers at once; ``[limits."llm:openai:*"]
max_in_flight = 3`` holds across the workers, and every activation completes."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery_support import Fleet

sys.path.insert(0, str(Path(__file__).parents[1] / "qm_nodes_llm"))

from fake_openai import FakeOpenAI, completion

from quartermaster_engine import FlowStatus
from quartermaster_engine.testing import build_graph, call


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    server.default = dataclasses.replace(completion("ok", model="gpt-4o-mini"), delay=0.05)
    yield server
    server.stop()


def asks(width: int) -> Any:
    """Start -> ``width`` Instruction1 nodes at once -> a join -> End."""
    nodes: dict[str, Any] = {"Start": "Start1"}
    for i in range(width):
        metadata = {"llm_model": "gpt-4o-mini", "llm_stream": False}
        nodes[f"ask{i}"] = {"type": "Instruction1", "metadata": metadata}
    nodes["J"] = {"type": "join", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", f"ask{i}") for i in range(width)]
    edges += [(f"ask{i}", "J") for i in range(width)]
    edges.append(("J", "End"))
    return build_graph(nodes, edges, name="asks")


def configure(fleet: Fleet, server: FakeOpenAI, limit: int | None) -> None:
    lines = [
        "[nodes.Instruction1]",
        'provider = "openai"',
        "[nodes.Instruction1.providers.openai]",
        f'base_url = "{server.base_url}"',
        'api_key = "sk-test"',
    ]
    if limit is not None:
        lines = ['[limits."llm:openai:*"]', f"max_in_flight = {limit}", *lines]
    with fleet.config.open("a") as out:
        out.write("\n" + "\n".join(lines) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("limit", [3, None], ids=["limit-3", "no-limit"])
def test_four_workers_send_at_most_max_in_flight_llm_calls(
    fleet: Fleet, openai_server: FakeOpenAI, limit: int | None
) -> None:
    configure(fleet, openai_server, limit)
    fleet.start_workers(4, concurrency=2)
    with fleet.runner(asks(200)) as runner:
        result = runner.run("question")
        snap = call(runner.store, "load_flow", result.flow_id)
    assert result.status is FlowStatus.COMPLETED, result.error
    finished = [r for r in snap.records if r.status.value == "finished"]
    assert len(finished) == 203  # Start, 200 asks, J, End
    assert len(openai_server.requests) == 200
    if limit is None:
        assert openai_server.most_in_flight > 3  # 8 worker threads call at once
    else:
        assert openai_server.most_in_flight == 3


@pytest.mark.slow
def test_workers_fail_or_pause_a_flow_at_its_budget(fleet: Fleet) -> None:
    """The worker that finds the budget reached runs nothing: the flow fails with
    the budget's error, or (pause) waits for approval and resumes after it."""
    with fleet.config.open("a") as out:
        out.write("\n[budgets]\nmax_node_runs = 3\n")
    fleet.start_workers(2, concurrency=1)
    graph = build_graph(
        {"Start": "Start1", **{f"n{i}": "work" for i in range(4)}, "End": "End1"},
        [("Start", "n0"), ("n0", "n1"), ("n1", "n2"), ("n2", "n3"), ("n3", "End")],
    )
    n2 = next(n.id for n in graph.nodes if n.name == "n2")
    with fleet.runner(graph) as runner:
        failed = runner.run("in")
    assert failed.status is FlowStatus.FAILED
    assert failed.error == (
        f"BudgetExceededError: budget max_node_runs of flow {failed.flow_id} is used up: "
        f"limit 3, usage 3 (before node 'n2' ({n2}))"
    )
    assert fleet.runs() == {"n0": 1, "n1": 1}
    with fleet.config.open("a") as out:
        out.write('on_exceeded = "pause"\n')
    fleet.stop_all()
    fleet.start_workers(2, concurrency=1)
    with fleet.runner(graph) as runner:
        paused = runner.run("in")
        assert paused.status is FlowStatus.PAUSED
        assert [w.node_name for w in paused.waiting] == ["n2"]
        done = runner.resume(paused.flow_id, "approve")
    assert done.status is FlowStatus.COMPLETED, done.error
    assert done.final_output == "n3(n2(n1(n0(in))))"

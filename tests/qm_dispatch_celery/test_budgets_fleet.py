"""Token windows and budgets on a Celery fleet (real ``qm worker`` processes, the Redis
store and broker): ``max_tokens`` per window holds across workers; key and flow
budgets count each activation once under duplicate delivery and retries; a budget
reached fails the flow with the exact error, or pauses it until approved."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery_support import Fleet

sys.path.insert(0, str(Path(__file__).parents[1] / "qm_nodes_llm"))

from fake_openai import FakeOpenAI, completion
from test_key_limits_fleet import configure, openai_server  # noqa: F401 - a fixture

from quartermaster_engine import FlowStatus
from quartermaster_engine.testing import build_graph, call
from quartermaster_engine.types import GraphSpec

KEY = "llm:openai:gpt-4o-mini"
TENANT = "tenant:acme"


def llm_chain(count: int) -> GraphSpec:
    """Start -> ``count`` Instruction1 nodes one after the other -> End."""
    nodes: dict[str, Any] = {"Start": "Start1", "End": "End1"}
    names = [f"ask{i}" for i in range(count)]
    for name in names:
        nodes[name] = {
            "type": "Instruction1",
            "metadata": {"llm_model": "gpt-4o-mini", "llm_stream": False},
        }
    return build_graph(nodes, list(itertools.pairwise(["Start", *names, "End"])), name="asks")


def spend_chain(nodes: dict[str, dict[str, Any]]) -> GraphSpec:
    """Start -> each of ``nodes`` (name -> extra spec of a ``spend`` node declaring the
    key ``tenant:acme``) one after the other -> End."""
    specs: dict[str, Any] = {"Start": "Start1", "End": "End1"}
    for name, extra in nodes.items():
        metadata = {"limit_keys": [TENANT], **extra.pop("metadata", {})}
        specs[name] = {"type": "spend", "metadata": metadata, **extra}
    order = ["Start", *nodes, "End"]
    return build_graph(specs, list(itertools.pairwise(order)), name="spend")


def append(fleet: Fleet, *lines: str) -> None:
    with fleet.config.open("a") as out:
        out.write("\n" + "\n".join(lines) + "\n")


def qm_json(fleet: Fleet, *args: str) -> Any:
    """A real ``qm`` command's ``--json`` output."""
    shown = fleet.qm(*args, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def counts(store: Any) -> list[int]:
    """The token counts of ``KEY`` in the store's window (looked at over a day)."""
    return [int(n) for _, n in call(store, "tokens_in_window", KEY, 86400.0, time.time())]


@pytest.mark.slow
def test_a_token_window_holds_across_the_fleet(
    fleet: Fleet,
    openai_server: FakeOpenAI,  # noqa: F811 - the fixture imported above
) -> None:
    """``max_tokens = 36`` per 10 s, 2 workers: a flow of 2 LLM calls (18 tokens each,
    counted once each in the store's window); another flow's call then waits, given
    back (``qm limits``: 36 tokens, 1 waiting), and goes out only once the first
    count left the window."""
    openai_server.default = completion("ok", model="gpt-4o-mini")
    configure(fleet, openai_server, None)
    append(fleet, f'[limits."{KEY}"]', "max_tokens = 36", 'per = "10s"')
    fleet.start_workers(2, concurrency=1)
    with fleet.runner(llm_chain(2)) as first, fleet.runner(llm_chain(1)) as second:
        done = first.run("q")
        assert done.status is FlowStatus.COMPLETED, done.error
        assert counts(first.store) == [18, 18]
        fid = second.submit("q")
        deadline = time.monotonic() + 8
        while True:
            rows = qm_json(fleet, "limits")["keys"]
            row = next((r for r in rows if r["key"] == KEY), None)
            if row is not None and row["waiting"] == 1:
                break
            assert time.monotonic() < deadline, f"never waiting; rows {rows}"
            time.sleep(0.1)
        assert (row["in_flight"], row["tokens"], row["max_tokens"]) == (0, 36, 36)
        record = fleet.wait_status(second.store, fid, "completed", timeout=60)
        assert record.final_output == "ok"
        after = counts(second.store)
    arrivals = openai_server.arrivals
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] < 10.0
    # Counted after its answer, the first call's 18 tokens left the window 10 s after
    # the call went out at the earliest.
    assert arrivals[2] - arrivals[0] >= 10.0
    assert after[-1] == 18  # the third call's count (older ones drop as they leave)
    assert "retry: Retry in" in "".join(log.read_text() for log in fleet.logs)


PRICED = [
    "[budgets]",
    "max_tokens = 100000",
    'currency = "USD"',
    '[budgets.prices."m1"]',
    "input = 2.0",
    "output = 10.0",
]


@pytest.mark.slow
def test_budgets_count_each_activation_once_under_duplicate_delivery_and_retries(
    make_fleet: Callable[..., Fleet],
) -> None:
    """Visibility timeout 1 s, node D runs 3 s: the broker hands D's task to the other
    worker while the first still runs it (both execute D; one commit is refused). F
    fails its first attempt and succeeds on its retry (each attempt reports 120
    tokens). Key ``tenant:acme`` and the flow count exactly D once and F's two
    attempts."""
    fleet = make_fleet(visibility_timeout=1, restore_interval=1)
    append(fleet, *PRICED, '[budgets."tenant:*"]', "max_tokens = 100000")
    fleet.start_workers(2, concurrency=1)
    graph = spend_chain(
        {
            "D": {"metadata": {"sleep": 3}},
            "F": {
                "metadata": {"fail_once": True},
                "error_handling": "Retry",
                "max_retries": 2,
                "retry_delay": 0.2,
            },
        }
    )
    with fleet.runner(graph) as runner:
        result = runner.run("x")
        snap = call(runner.store, "load_flow", result.flow_id)
    assert result.status is FlowStatus.COMPLETED, result.error
    assert result.final_output == "F(D(x))"
    runs = fleet.runs()
    assert runs["D"] >= 2  # delivered twice, executed by both workers
    names = {n.id: n.name for n in snap.flow.graph.nodes}
    assert sorted((names[r.node_id], r.attempt, r.status.value) for r in snap.records) == [
        ("D", 1, "finished"),
        ("End", 1, "finished"),
        ("F", 1, "failed"),
        ("F", 2, "finished"),
        ("Start", 1, "finished"),
    ]
    keys = qm_json(fleet, "budgets")["keys"]
    row = next(r for r in keys if r["key"] == TENANT)
    assert (row["node_runs"], row["tokens"], row["table"]) == (3, 360, "tenant:*")
    assert row["cost"] == pytest.approx(3 * (100 * 2.0 + 20 * 10.0) / 1_000_000)
    usage = qm_json(fleet, "flows", "show", str(result.flow_id))["usage"]
    assert (usage["node_runs"], usage["input_tokens"], usage["output_tokens"]) == (5, 300, 60)
    assert usage["tokens"] == 360


@pytest.mark.slow
@pytest.mark.parametrize("owner", ["flow", "key"])
def test_a_token_budget_reached_on_the_fleet_fails_the_flow(fleet: Fleet, owner: str) -> None:
    """A budget of 240 tokens (the flow's, or the key's): after a and b (120 each), the
    worker fails the flow before c with the exact text."""
    table = "[budgets]" if owner == "flow" else f'[budgets."{TENANT}"]'
    append(fleet, table, "max_tokens = 240")
    fleet.start_workers(2, concurrency=1)
    graph = spend_chain({"a": {}, "b": {}, "c": {}})
    c = next(n.id for n in graph.nodes if n.name == "c")
    with fleet.runner(graph) as runner:
        failed = runner.run("x")
    assert failed.status is FlowStatus.FAILED
    whose, where = (
        (f"flow {failed.flow_id}", f"before node 'c' ({c})")
        if owner == "flow"
        else (f"key {TENANT}", f"flow {failed.flow_id}, before node 'c' ({c})")
    )
    assert failed.error == (
        f"BudgetExceededError: budget max_tokens of {whose} is used up: "
        f"limit 240, usage 240 ({where})"
    )
    assert fleet.runs() == {"a": 1, "b": 1}


@pytest.mark.slow
def test_a_key_budget_reached_on_the_fleet_pauses_until_approved(fleet: Fleet) -> None:
    """``on_exceeded = "pause"`` on the key's budget: the flow pauses before c with the
    budget's prompt; answered 'approve' from another process (``qm resume``), c runs
    once and the flow completes; the key then holds exactly 3 runs, 360 tokens."""
    append(fleet, f'[budgets."{TENANT}"]', "max_tokens = 240", 'on_exceeded = "pause"')
    fleet.start_workers(2, concurrency=1)
    graph = spend_chain({"a": {}, "b": {}, "c": {}})
    c = next(n.id for n in graph.nodes if n.name == "c")
    with fleet.runner(graph) as runner:
        paused = runner.run("x")
    assert paused.status is FlowStatus.PAUSED, paused.error
    assert [(w.node_name, w.prompt) for w in paused.waiting] == [
        (
            "c",
            f"[budget] budget max_tokens of key {TENANT} is used up (limit 240, usage 240); "
            f"answer 'approve' to allow as much again before node 'c' ({c}) runs",
        )
    ]
    assert fleet.runs() == {"a": 1, "b": 1}
    resumed = fleet.qm("resume", str(paused.flow_id), "--input", "approve", "--json")
    assert resumed.returncode == 0, resumed.stderr
    shown = json.loads(resumed.stdout)
    assert (shown["status"], shown["final_output"]) == ("completed", "c(b(a(x)))")
    assert fleet.runs() == {"a": 1, "b": 1, "c": 1}
    row = next(r for r in qm_json(fleet, "budgets")["keys"] if r["key"] == TENANT)
    assert (row["node_runs"], row["tokens"]) == (3, 360)

"""Budgets per key across flows (``[budgets."tenant:acme"]``) on memory, SQLite,
Redis and PostgreSQL: every flow whose activations declare the key adds to its
usage once per accepted commit, a reached key budget fails (or pauses) the next
flow's activation with the key, and `qm budgets` shows the usage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from budget_support import TENANT, chain, engine

from quartermaster_engine import InMemoryStore
from quartermaster_engine.budgets import APPROVALS_KEY, BudgetsConfig
from quartermaster_engine.config import ConfigError, EngineConfig
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.stores.adapter import StoreAdapter, _done
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.graphs import build_graph, name_id

B, C = name_id("b"), name_id("c")


async def _totals(new_store: Callable[[], Any], eng: Any) -> dict[str, tuple[int, int, float]]:
    """The key's usage as every process sharing the store sees it (on memory: the
    engine's own)."""
    store = new_store()
    if isinstance(store, InMemoryStore):
        found: dict[str, tuple[int, int, float]] = await eng.key_budgets.totals()
        return found
    raw = await _done(store.key_usages())
    await StoreAdapter(store).close()
    return {k: (int(r), int(t), round(float(c), 9)) for k, (r, t, c) in raw.items()}


async def _two_flows_add_up(new_store: Callable[[], Any]) -> None:
    """Two flows (two engines on the store; one on memory) of 2 nodes with the key:
    4 runs, 480 tokens, 0.0016 USD; the third flow's second node finds 480 >= 400."""
    budget = {TENANT: {"max_tokens": 400}}
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(engine(new_store(), **budget))
        second = first  # on memory each engine counts its own: one engine there
        if not isinstance(new_store(), InMemoryStore):
            second = await stack.enter_async_context(engine(new_store(), **budget))
        one = await first.run(chain(["a", "b"]), "go")
        two = await second.run(chain(["a", "b"]), "go")
        assert (one.status, two.status) == (FlowStatus.COMPLETED, FlowStatus.COMPLETED)
        totals = await _totals(new_store, first)
        assert {k: (r, t, round(c, 9)) for k, (r, t, c) in totals.items()} == {
            TENANT: (4, 480, 0.0016)
        }
        third = await second.run(chain(["a", "b"]), "go")
    assert third.status is FlowStatus.FAILED
    assert third.error == (
        f"BudgetExceededError: budget max_tokens of key {TENANT} is used up: "
        f"limit 400, usage 480 (flow {third.flow_id}, before node 'a' ({name_id('a')}))"
    )


def test_two_flows_add_up_and_the_next_fails(new_store: Callable[[], Any]) -> None:
    asyncio.run(_two_flows_add_up(new_store))


async def _node_runs(new_store: Callable[[], Any]) -> None:
    async with engine(new_store(), **{TENANT: {"max_node_runs": 2}}) as eng:
        result = await eng.run(chain(["a", "b", "c"]), "go")
    assert result.error == (
        f"BudgetExceededError: budget max_node_runs of key {TENANT} is used up: "
        f"limit 2, usage 2 (flow {result.flow_id}, before node 'c' ({C}))"
    )


def test_a_node_runs_budget_names_the_key(new_store: Callable[[], Any]) -> None:
    asyncio.run(_node_runs(new_store))


async def _cost(new_store: Callable[[], Any]) -> None:
    """A pattern's budget holds for the key it matches; a run costs 0.0004 EUR."""
    async with engine(new_store(), currency="EUR", **{"tenant:*": {"max_cost": 0.0007}}) as eng:
        result = await eng.run(chain(["a", "b", "c"]), "go")
    assert result.error == (
        f"BudgetExceededError: budget max_cost of key {TENANT} is used up: "
        f"limit 0.0007 EUR, usage 0.0008 EUR (flow {result.flow_id}, before node 'c' ({C}))"
    )


def test_a_pattern_cost_budget_names_the_key(new_store: Callable[[], Any]) -> None:
    asyncio.run(_cost(new_store))


async def _pause_then_approve(new_store: Callable[[], Any]) -> None:
    budget = {TENANT: {"max_tokens": 200, "on_exceeded": "pause"}}
    async with engine(new_store(), **budget) as eng:
        paused = await eng.run(chain(["a", "b", "c"]), "go")
        assert paused.status is FlowStatus.PAUSED
        (wait,) = paused.waiting
        assert wait.prompt == (
            f"[budget] budget max_tokens of key {TENANT} is used up (limit 200, usage 240); "
            f"answer 'approve' to allow as much again before node 'c' ({C}) runs"
        )
        done = await eng.resume(paused.flow_id, "approve")
        assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "c ok")
        snap = await eng.flows.show(paused.flow_id)
        assert snap.memory[APPROVALS_KEY] == 1
        totals = await _totals(new_store, eng)
    assert totals[TENANT][:2] == (3, 360)


def test_a_paused_key_budget_resumes_after_approval(new_store: Callable[[], Any]) -> None:
    asyncio.run(_pause_then_approve(new_store))


async def _duplicate_counts_once(new_store: Callable[[], Any]) -> None:
    """Two workers execute and complete one activation: the refused commit adds
    nothing to the key's usage; workers obey the key's budget."""
    budget = {TENANT: {"max_tokens": 10_000}}
    first, second = engine(new_store(), **budget), engine(new_store(), **budget)
    async with first, second:
        flow_id = await first.submit(chain(["a", "b"]), "go")
        one, two = FlowStepper(first), FlowStepper(second)
        await one.step(flow_id)  # Start
        ((ref, _),) = await one.pending(flow_id)
        work_one, work_two = await one.execute(flow_id, ref), await two.execute(flow_id, ref)
        assert work_one is not None
        assert work_two is not None
        done, dup = await one.complete(work_one), await two.complete(work_two)
        assert (done.duplicate, dup.duplicate) == (False, True)
        final = await two.run_to_end(flow_id)
        assert final.status is FlowStatus.COMPLETED
        if isinstance(new_store(), InMemoryStore):  # each engine counts its own there:
            # the first committed a, the second only b (its refused a added nothing).
            assert await first.key_budgets.totals() == {TENANT: (1, 120, 0.0004)}
            assert await second.key_budgets.totals() == {TENANT: (1, 120, 0.0004)}
            return
        totals = await _totals(new_store, first)
    assert totals[TENANT][:2] == (2, 240)  # a once (though it ran twice), b
    async with engine(new_store(), **{TENANT: {"max_tokens": 240}}) as eng:
        flow_id = await eng.submit(chain(["a"]), "go")
        stepper = FlowStepper(eng)
        last = await stepper.run_to_end(flow_id)
    assert last.status is FlowStatus.FAILED
    assert last.result is not None
    assert last.result.error == (
        f"BudgetExceededError: budget max_tokens of key {TENANT} is used up: "
        f"limit 240, usage 240 (flow {flow_id}, before node 'a' ({name_id('a')}))"
    )


def test_a_duplicate_delivery_adds_nothing_to_the_key(new_store: Callable[[], Any]) -> None:
    asyncio.run(_duplicate_counts_once(new_store))


async def _no_key_pays_nothing(new_store: Callable[[], Any]) -> None:
    """Nodes without the key: nothing counted, nothing refused, however small the budget."""
    graph = build_graph(
        {"Start": "Start1", "a": "llm", "End": "End1"}, [("Start", "a"), ("a", "End")]
    )
    async with engine(new_store(), **{TENANT: {"max_node_runs": 1}}) as eng:
        for _ in range(3):
            result = await eng.run(graph, "go")
            assert result.status is FlowStatus.COMPLETED, result.error
        assert await _totals(new_store, eng) == {}


def test_flows_without_the_key_count_nothing(new_store: Callable[[], Any]) -> None:
    asyncio.run(_no_key_pays_nothing(new_store))


def test_key_budget_tables_are_validated() -> None:
    config = EngineConfig.load(
        {"budgets": {"max_tokens": 5, "tenant:acme": {"max_tokens": 7, "on_exceeded": "pause"}}},
        environ={},
    )
    assert config.budgets is not None
    assert config.budgets.max_tokens == 5
    assert config.budgets.keys["tenant:acme"].max_tokens == 7
    assert config.budgets.table_of("tenant:acme") == "tenant:acme"
    assert BudgetsConfig.model_validate({"tenant:*": {"max_node_runs": 1}}).table_of(
        "tenant:x"
    ) == ("tenant:*")
    with pytest.raises(ConfigError) as info:
        EngineConfig.load({"budgets": {"tenant:acme": {"max_cost": 1.0}}}, environ={})
    assert "tenant:acme.max_cost needs a price table" in str(info.value)
    with pytest.raises(ConfigError) as info:
        EngineConfig.load({"budgets": {"tenant:acme": {"max_tokenz": 1}}}, environ={})
    assert "budgets.tenant:acme.max_tokenz" in str(info.value)


@pytest.mark.slow
def test_two_processes_add_up_on_the_shared_store(
    shared_store: dict[str, Any], tmp_path: Path
) -> None:
    """Two worker processes each run 2 flows of 2 nodes with the key at once: the
    store holds exactly 8 runs and 960 tokens; then a budget of 960 refuses a third
    process's next flow, and ``qm budgets`` shows the usage and the limit."""
    worker = Path(__file__).with_name("key_budget_worker.py")
    env = {**os.environ, "PYTHONPATH": str(worker.parent)}
    go = tmp_path / "go"

    def start(i: int, budget: dict[str, Any], flows: int) -> subprocess.Popen[str]:
        args = {"store": shared_store, "budget": budget, "flows": flows, "names": ["a", "b"]}
        args.update(go=str(go), ready=str(tmp_path / f"ready-{i}"))
        return subprocess.Popen(
            [sys.executable, str(worker), json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    workers = [start(i, {"max_tokens": 1_000_000}, 2) for i in range(2)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-?"))) < 2:
        assert time.monotonic() < deadline, "the workers did not get ready"
        time.sleep(0.01)
    go.touch()
    for proc in workers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == [["completed", None]] * 2
    late = start(2, {"max_tokens": 960}, 1)
    out, err = late.communicate(timeout=120)
    assert late.returncode == 0, err
    ((status, error),) = json.loads(out.strip().splitlines()[-1])
    assert status == "failed"
    assert error.startswith(
        f"BudgetExceededError: budget max_tokens of key {TENANT} is used up: "
        "limit 960, usage 960 (flow "
    )
    assert error.endswith(f", before node 'a' ({name_id('a')}))")

    toml = [f"[store]\n{_toml(shared_store)}", "[budgets]", 'currency = "USD"']
    toml += ['[budgets.prices."m1"]', "input = 2", "output = 10"]
    toml += [
        f'[budgets."{TENANT}"]',
        "max_tokens = 960",
        '[budgets."tenant:*"]',
        "max_node_runs = 5",
    ]
    (tmp_path / "qm.toml").write_text("\n".join(toml) + "\n")
    qm = str(Path(sys.executable).parent / "qm")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    shown = subprocess.run(
        [qm, "budgets", "--json"], cwd=tmp_path, env=clean, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "store": shared_store["name"],
        "shared": True,
        "currency": "USD",
        "keys": [
            {
                "key": TENANT,
                "table": TENANT,
                "max_node_runs": None,
                "max_tokens": 960,
                "max_cost": None,
                "on_exceeded": "fail",
                "node_runs": 8,
                "tokens": 960,
                "cost": 0.0032,
            },
            {
                "key": "tenant:*",
                "table": "tenant:*",
                "max_node_runs": 5,
                "max_tokens": None,
                "max_cost": None,
                "on_exceeded": "fail",
                "node_runs": 0,
                "tokens": 0,
                "cost": 0.0,
            },
        ],
    }
    text = subprocess.run([qm, "budgets"], cwd=tmp_path, env=clean, capture_output=True, text=True)
    assert text.returncode == 0, text.stderr
    cells = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in text.stdout.splitlines()
        if line.startswith("│")
    ]
    assert cells == [
        [TENANT, "-", "960", "-", "fail", TENANT, "8", "960", "0.0032 USD"],
        ["tenant:*", "5", "-", "-", "fail", "tenant:*", "0", "0", "0 USD"],
    ]


def _toml(section: dict[str, Any]) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in section.items())

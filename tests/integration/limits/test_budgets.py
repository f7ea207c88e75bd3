"""Durable budgets per flow on memory, SQLite, Redis and PostgreSQL: usage counted
once per committed activation (a retry's failed attempt is a run of its own; a
duplicate delivery counts nothing), the exact error of a budget reached, and a
pause for approval resumed like any other wait."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from budget_support import TENANT, chain, drive_as_workers, engine

from quartermaster_engine.budgets import APPROVALS_KEY, flow_usage
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.stores.adapter import StoreAdapter, _done
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.graphs import name_id

C = name_id("c")


async def _usage(new_store: Callable[[], Any], flow_id: Any, **budgets: Any) -> dict[str, Any]:
    """The flow's usage as a process that did not run it reads it from the store."""
    async with engine(new_store(), **budgets) as reader:
        snap = await reader.flows.show(flow_id)
        return flow_usage(snap.records, reader.budgets).to_dict()


async def _a_retry_counts_each_attempt_once(new_store: Callable[[], Any]) -> None:
    async with engine(new_store(), max_tokens=10_000) as eng:
        result = await eng.run(chain(["a", "flaky", "b"]), "go")
    assert result.status is FlowStatus.COMPLETED, result.error
    # Start, a, flaky (failed, then finished), b, End: 6 runs; 4 of 120 tokens.
    assert await _usage(new_store, result.flow_id, max_tokens=10_000) == {
        "node_runs": 6,
        "input_tokens": 400,
        "output_tokens": 80,
        "tokens": 480,
        "cost": 0.0016,
        "currency": "USD",
    }


async def _a_duplicate_delivery_counts_nothing(new_store: Callable[[], Any]) -> None:
    """Two engines (two connections) execute and complete the same activation: the
    fencing refuses the second commit, and usage counts the first alone."""
    first, second = engine(new_store(), max_tokens=10_000), engine(new_store(), max_tokens=10_000)
    async with first, second:
        flow_id = await first.submit(chain(["a", "b"]), "go")
        one, two = FlowStepper(first), FlowStepper(second)
        await one.step(flow_id)  # Start
        ((ref, _),) = await one.pending(flow_id)
        work_one = await one.execute(flow_id, ref)
        work_two = await two.execute(flow_id, ref)
        assert work_one is not None
        assert work_two is not None
        done = await one.complete(work_one)
        dup = await two.complete(work_two)
        assert (done.duplicate, dup.duplicate) == (False, True)
        final = await two.run_to_end(flow_id)
        assert final.status is FlowStatus.COMPLETED
    usage = await _usage(new_store, flow_id, max_tokens=10_000)
    # Start has no usage but is a run; a and b once each; End is a run.
    assert (usage["node_runs"], usage["tokens"]) == (4, 240)


async def _a_reached_token_budget_fails_the_flow_with_its_usage(
    new_store: Callable[[], Any],
) -> None:
    async with engine(new_store(), max_tokens=200) as eng:
        result = await eng.run(chain(["a", "b", "c", "d"]), "go")
        snap = await eng.flows.show(result.flow_id)
    assert result.status is FlowStatus.FAILED
    expected = (
        f"BudgetExceededError: budget max_tokens of flow {result.flow_id} is used up: "
        f"limit 200, usage 240 (before node 'c' ({C}))"
    )
    assert result.error == expected
    assert snap.flow.status is FlowStatus.FAILED
    assert snap.flow.error == expected
    assert [r.node_id for r in snap.records][-1] == snap.flow.graph.nodes[2].id  # b ran last
    assert flow_usage(snap.records, None).tokens == 240


async def _node_runs_and_cost_budgets_name_their_limit(new_store: Callable[[], Any]) -> None:
    async with engine(new_store(), max_node_runs=3) as eng:
        result = await eng.run(chain(["a", "b", "c"]), "go")
    assert result.error == (
        f"BudgetExceededError: budget max_node_runs of flow {result.flow_id} is used up: "
        f"limit 3, usage 3 (before node 'c' ({C}))"
    )
    async with engine(new_store(), max_cost=0.0005, currency="EUR") as eng:
        result = await eng.run(chain(["a", "b", "c", "d", "e"]), "go")
    # 0.0004 EUR per run (100 tokens in at 2, 20 out at 10 per million): two reach 0.0005.
    assert result.error == (
        f"BudgetExceededError: budget max_cost of flow {result.flow_id} is used up: "
        f"limit 0.0005 EUR, usage 0.0008 EUR (before node 'c' ({C}))"
    )


async def _a_paused_budget_resumes_after_approval(new_store: Callable[[], Any]) -> None:
    graph = chain(["a", "b", "c"])
    async with engine(new_store(), max_tokens=200, on_exceeded="pause") as eng:
        paused = await eng.run(graph, "go")
    assert paused.status is FlowStatus.PAUSED
    (wait,) = paused.waiting
    assert (wait.node_name, wait.options) == ("c", ["approve"])
    assert wait.prompt == (
        "[budget] budget max_tokens of this flow is used up (limit 200, usage 240); "
        f"answer 'approve' to allow as much again before node 'c' ({C}) runs"
    )
    # Another process approves: 400 tokens allowed now; with c, 360 are spent.
    async with engine(new_store(), max_tokens=200, on_exceeded="pause") as other:
        done = await other.resume(paused.flow_id, "approve")
        assert done.status is FlowStatus.COMPLETED, done.error
        assert done.final_output == "c ok"
        snap = await other.flows.show(paused.flow_id)
    assert snap.memory[APPROVALS_KEY] == 1
    assert flow_usage(snap.records, None).tokens == 360
    # c ran once, with no answer of its own.
    c_runs = [r for r in snap.records if r.node_id == graph.nodes[3].id]
    assert [(r.status.value, r.user_input) for r in c_runs] == [("finished", None)]


def test_a_retry_counts_each_attempt_once(new_store: Callable[[], Any]) -> None:
    asyncio.run(_a_retry_counts_each_attempt_once(new_store))


def test_a_duplicate_delivery_counts_nothing(new_store: Callable[[], Any]) -> None:
    asyncio.run(_a_duplicate_delivery_counts_nothing(new_store))


def test_a_reached_token_budget_fails_the_flow_with_its_usage(new_store: Callable[[], Any]) -> None:
    asyncio.run(_a_reached_token_budget_fails_the_flow_with_its_usage(new_store))


def test_node_runs_and_cost_budgets_name_their_limit(new_store: Callable[[], Any]) -> None:
    asyncio.run(_node_runs_and_cost_budgets_name_their_limit(new_store))


def test_a_paused_budget_resumes_after_approval(new_store: Callable[[], Any]) -> None:
    asyncio.run(_a_paused_budget_resumes_after_approval(new_store))


async def _workers_obey_budgets(new_store: Callable[[], Any]) -> None:
    async with engine(new_store(), max_tokens=200) as eng:
        flow_id = await eng.submit(chain(["a", "b", "c"]), "go")
        last = await drive_as_workers(eng, flow_id)
        assert last.status is FlowStatus.FAILED
        assert last.result.error == (
            f"BudgetExceededError: budget max_tokens of flow {flow_id} is used up: "
            f"limit 200, usage 240 (before node 'c' ({C}))"
        )
    async with engine(new_store(), max_tokens=200, on_exceeded="pause") as eng:
        flow_id = await eng.submit(chain(["a", "b", "c"]), "go")
        last = await drive_as_workers(eng, flow_id)
        assert last.status is FlowStatus.PAUSED
        assert [w.node_name for w in last.result.waiting] == ["c"]
        done = await eng.resume(flow_id, "approve")
        assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "c ok")


def test_workers_obey_budgets(new_store: Callable[[], Any]) -> None:
    asyncio.run(_workers_obey_budgets(new_store))


def test_qm_flows_show_gives_the_usage(tmp_path: Path) -> None:
    """``qm flows show`` (a real ``qm`` process) on a SQLite flow run with budgets."""
    from qm_store_sqlite import SQLiteStore

    async def run() -> str:
        async with engine(SQLiteStore(str(tmp_path / "flows.db")), max_tokens=10_000) as eng:
            return str((await eng.run(chain(["a", "flaky"]), "go")).flow_id)

    flow_id = asyncio.run(run())
    (tmp_path / "qm.toml").write_text(
        '[store]\nname = "sqlite"\npath = "flows.db"\n'
        "[budgets]\nmax_tokens = 10000\n[budgets.prices.m1]\ninput = 2\noutput = 10\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    qm = str(Path(sys.executable).parent / "qm")
    args = [qm, "flows", "show", flow_id]
    shown = subprocess.run(
        [*args, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(shown.stdout)["usage"] == {
        "node_runs": 5,
        "input_tokens": 300,
        "output_tokens": 60,
        "tokens": 360,
        "cost": 0.0012,
        "currency": "USD",
    }
    text = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert "usage: 5 node runs, 360 tokens (300 in, 60 out), cost 0.0012 USD\n" in text.stdout


@pytest.mark.slow
def test_two_processes_racing_on_one_activation_count_it_once(
    shared_store: dict[str, Any], tmp_path: Path
) -> None:
    """Two worker processes execute the same activation at once and both try to
    commit it: the fencing refuses one, and usage counts the activation once, as
    does the store's window of tokens of the nodes' limit key."""
    from quartermaster_engine import assembly
    from quartermaster_engine.config import EngineConfig

    def store() -> Any:
        return assembly.build_store(EngineConfig.load({"store": shared_store}, environ={}))

    async def prepare() -> tuple[str, list[Any]]:
        async with engine(store(), max_tokens=10_000) as eng:
            flow_id = await eng.submit(chain(["a", "b"]), "go")
            stepper = FlowStepper(eng)
            await stepper.step(flow_id)  # Start
            ((ref, _),) = await stepper.pending(flow_id)
            return str(flow_id), [str(ref[0]), ref[1], ref[2]]

    flow_id, ref = asyncio.run(prepare())
    side, go = tmp_path / "side.log", tmp_path / "go"
    worker = Path(__file__).with_name("budget_race.py")
    env = {**os.environ, "PYTHONPATH": str(worker.parent), "BUDGET_SIDE": str(side)}
    racers = []
    for i in range(2):
        args = {"store": shared_store, "flow_id": flow_id, "ref": ref, "go": str(go)}
        args["ready"] = str(tmp_path / f"ready-{i}")
        racers.append(
            subprocess.Popen(
                [sys.executable, str(worker), json.dumps(args)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-?"))) < 2:
        assert time.monotonic() < deadline, "the racers did not get ready"
        time.sleep(0.01)
    go.touch()
    outcomes = []
    for proc in racers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outcomes.append(json.loads(out.strip().splitlines()[-1])["duplicate"])
    assert sorted(outcomes) == [False, True]
    assert side.read_text() == "a\na\n"  # the work ran in both processes

    async def tokens_counted() -> list[int]:
        shared = store()
        try:
            used = await _done(shared.tokens_in_window(TENANT, 3600.0, time.time()))
            return [int(n) for _, n in used]
        finally:
            await StoreAdapter(shared).close()

    assert asyncio.run(tokens_counted()) == [120]  # the accepted commit's, once

    async def finish_and_count() -> dict[str, Any]:
        async with engine(store(), max_tokens=10_000) as eng:
            final = await FlowStepper(eng).run_to_end(UUID(flow_id))
            assert final.status is FlowStatus.COMPLETED
            snap = await eng.flows.show(flow_id)
            return flow_usage(snap.records, eng.budgets).to_dict()

    usage = asyncio.run(finish_and_count())
    # Start, a (once, though it ran twice), b, End.
    assert (usage["node_runs"], usage["tokens"]) == (4, 240)


async def _steppers_taking_turns_count_each_run_once(new_store: Callable[[], Any]) -> None:
    """Two workers take turns on one flow: each catches up on the records the other
    committed, and reads its own again; usage counts every run once."""
    first, second = engine(new_store(), max_tokens=300), engine(new_store(), max_tokens=300)
    async with first, second:
        flow_id = await first.submit(chain(["a", "b", "c", "d"]), "go")
        steppers = [FlowStepper(first), FlowStepper(second)]
        turn, last = 0, None
        while last is None or last.status is FlowStatus.RUNNING:
            last = await steppers[turn % 2].step(flow_id)
            turn += 1
    assert last.status is FlowStatus.FAILED
    assert last.result is not None
    assert last.result.error == (
        f"BudgetExceededError: budget max_tokens of flow {flow_id} is used up: "
        f"limit 300, usage 360 (before node 'd' ({name_id('d')}))"
    )


def test_steppers_taking_turns_count_each_run_once(new_store: Callable[[], Any]) -> None:
    asyncio.run(_steppers_taking_turns_count_each_run_once(new_store))

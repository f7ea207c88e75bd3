"""Usage is counted by the fenced commit itself (docs/limits.md): a process SIGKILLed
as its store accepts a commit leaves that record counted, in the key's budget totals
and in its token window, on SQLite, Redis and PostgreSQL; recovering the flow counts
each remaining node once. Nodes with two budgeted keys count for both, which the
budget check reads at once (memory, SQLite, Redis, PostgreSQL)."""

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
from uuid import UUID, uuid4

import pytest
from budget_support import TENANT, engine

from quartermaster_engine import assembly
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.calls import call, close_store
from quartermaster_engine.testing.graphs import build_graph, name_id

WORKER = Path(__file__).with_name("counted_crash_worker.py")


def _worker(args: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(WORKER.parent)}
    return subprocess.run(
        [sys.executable, str(WORKER), json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _seen(section: dict[str, Any], flow_id: str) -> tuple[Any, ...]:
    """(the flow's records, the key's totals, its token window), read afresh."""
    store = assembly.build_store(EngineConfig.load({"store": section}, environ={}))
    try:
        snap = call(store, "load_flow", UUID(flow_id))
        records = [(r.node_id, r.status.value) for r in snap.records]
        ((runs, tokens, cost),) = call(store, "keys_usage", [TENANT])
        window = [n for _, n in call(store, "tokens_in_window", TENANT, 3600.0, time.time())]
        return len(records), (runs, tokens, round(cost, 9)), window
    finally:
        close_store(store)


@pytest.mark.slow
def test_a_record_accepted_before_a_sigkill_is_counted_once(
    shared_store: dict[str, Any],
) -> None:
    flow_id = str(uuid4())
    args = {"store": shared_store, "flow_id": flow_id, "names": ["a", "b", "c"]}
    killed = _worker({**args, "mode": "run", "kill_after": "b"})
    assert killed.returncode == -9, killed.stderr
    # Start, a and b were committed; a and b (the key's nodes) counted with them.
    assert _seen(shared_store, flow_id) == (3, (2, 240, 0.0008), [120, 120])
    done = _worker({**args, "mode": "recover"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["completed", "c ok"]
    assert _seen(shared_store, flow_id) == (5, (3, 360, 0.0012), [120, 120, 120])


async def _two_keys_one_read(new_store: Callable[[], Any]) -> None:
    """Nodes with two budgeted keys: both count each run, and the check reads both
    at once; the second key's budget stops the flow, named."""
    region = "region:eu"
    keyed = {"type": "llm", "metadata": {"limit_keys": [TENANT, region]}}
    graph = build_graph(
        {"Start": "Start1", "a": keyed, "b": keyed, "c": keyed, "End": "End1"},
        [("Start", "a"), ("a", "b"), ("b", "c"), ("c", "End")],
    )
    budgets = {TENANT: {"max_tokens": 10_000}, region: {"max_node_runs": 2}}
    async with engine(new_store(), **budgets) as eng:
        result = await eng.run(graph, "go")
        totals = await eng.key_budgets.totals()
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"BudgetExceededError: budget max_node_runs of key {region} is used up: "
        f"limit 2, usage 2 (flow {result.flow_id}, before node 'c' ({name_id('c')}))"
    )
    assert {k: (r, t, round(c, 9)) for k, (r, t, c) in totals.items() if k in budgets} == {
        TENANT: (2, 240, 0.0008),
        region: (2, 240, 0.0008),
    }


def test_two_budgeted_keys_count_each_run_and_are_read_together(
    new_store: Callable[[], Any],
) -> None:
    asyncio.run(_two_keys_one_read(new_store))

"""Usage is counted by the fenced commit itself (docs/limits.md): a process SIGKILLed
as its store accepts a commit leaves that record counted, in the key's budget totals
and in its token window, on SQLite, Redis and PostgreSQL; recovering the flow counts
each remaining node once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from budget_support import TENANT

from quartermaster_engine import assembly
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.testing.calls import call, close_store

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

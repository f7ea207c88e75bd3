"""A process SIGKILLed right after its store accepted one commit:
``python counted_crash_worker.py '<json args>'``.

``mode`` "run": opens the store ``store`` (a ``[store]`` section) and runs the
chain ``names`` (each node declaring the key ``tenant:acme``, which has a budget
and a token window) as flow ``flow_id``; once the store has accepted the commit
of node ``kill_after``'s record it SIGKILLs itself, before the engine does
anything more. ``mode`` "recover": continues the flow (taking over the dead
process's lease), prints its status and final output.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any
from uuid import UUID

from budget_support import PRICES, TENANT, chain, registry

from quartermaster_engine import Engine, assembly
from quartermaster_engine.budgets import BudgetsConfig
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.runner.key_limits import Rule
from quartermaster_engine.stores.records import Commit
from quartermaster_engine.testing.graphs import name_id


def die_after_commit_of(store: Any, node: str) -> None:
    """The crash point: the process dies as the store's commit of ``node``'s record
    returns, accepted (a real SIGKILL; the store is the real one)."""
    accept = store.commit
    target = name_id(node)

    async def commit(flow_id: UUID, commit: Commit) -> None:
        await accept(flow_id, commit)
        if commit.record is not None and commit.record.node_id == target:
            os.kill(os.getpid(), signal.SIGKILL)

    store.commit = commit


async def main(args: dict[str, Any]) -> list[Any]:
    store = assembly.build_store(EngineConfig.load({"store": args["store"]}, environ={}))
    if args["mode"] == "run":
        die_after_commit_of(store, args["kill_after"])
    budgets = BudgetsConfig.model_validate({"prices": PRICES, TENANT: {"max_node_runs": 1000}})
    limits = {TENANT: Rule(max_tokens=1_000_000, per=3600.0)}
    eng = Engine(store=store, registry=registry(), budgets=budgets, key_limits=limits)
    async with eng:
        eng.own(store)
        if args["mode"] == "run":
            result = await eng.run(chain(args["names"]), "go", flow_id=args["flow_id"])
        else:  # (a driver that died on this host is taken over at once)
            result = await eng.recover(args["flow_id"], wait=5.0)
    return [result.status.value, result.final_output]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))

"""Map1 across a SIGKILL, for the durable stores' test suites (docs/map.md).

A worker process runs ``Start -> M (Map1 over N items, K at once) -> End``; each
item appends its index to a side file. In ``run`` mode it SIGKILLs itself once
the commit of the ``DIE_AFTER``-th item succeeded (its MapProgress event).
Another process recovers the flow: only the unfinished items run again (each
index is in the side file exactly once), and the output lists every item in
order.

A store's worker script calls `map_worker_main` with its store; its test calls
`check_sigkill_during_map`, starting the script with `processes.WorkerCommand`
(modes ``map-run`` and ``map-recover``).
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.events import FlowEvent, MapProgress
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner.flow_runner import FlowRunner
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.calls import call
from quartermaster_graph import GraphBuilder, GraphSpec

RunWorker = Callable[..., Any]


def map_graph(k: int) -> GraphSpec:
    """``Start -> M (Map1 of node type "work", K at once) -> End``."""
    return (
        GraphBuilder("Map")
        .start()
        .map("M", items="items", node="work", max_concurrency=k)
        .end()
        .build()
    )


class ItemsOf:
    """A Map1 items executor: ``n`` items ``"0"`` .. ``"n-1"`` (no expression pack needed)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def execute(self, context: ExecutionContext) -> NodeResult:
        return NodeResult(data={"map_items": [str(i) for i in range(self.n)]})


def map_worker_main(store: Any, argv: list[str]) -> dict[str, Any]:
    """The worker process: ``map-run|map-recover FLOW_ID SIDE_FILE N K DIE_AFTER``
    (mode names a store's worker script can share with other kits')."""
    mode, flow_id, side, n, k, die_after = argv[:6]

    def work(ctx: ExecutionContext) -> NodeResult:
        with open(side, "a") as fh:  # O_APPEND: one short write per line
            fh.write(ctx.input_text + "\n")
        return NodeResult(output_text=f"<{ctx.input_text}>")

    def die(event: FlowEvent) -> None:
        if mode == "map-run" and isinstance(event, MapProgress) and event.done == int(die_after):
            os.kill(os.getpid(), signal.SIGKILL)

    runner = FlowRunner(
        map_graph(int(k)),
        SimpleNodeRegistry({"work": work, "Map1": ItemsOf(int(n))}),
        store=store,
        on_event=die,
    )
    fid = UUID(flow_id)
    result = runner.run("in", flow_id=fid) if mode == "map-run" else runner.recover(fid)
    return {"status": result.status.value, "final_output": result.final_output}


def check_sigkill_during_map(
    open_store: Callable[[], Any],
    run_worker: RunWorker,
    side: Path,
    n: int = 40,
    k: int = 4,
    die_after: int = 17,
) -> None:
    """Kill a worker after ``die_after`` of ``n`` items committed; recover in another
    process; assert each item ran exactly once and the join is in item order."""
    flow_id = uuid4()
    crashed = run_worker("map-run", str(flow_id), str(side), str(n), str(k), str(die_after))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(side.read_text().split()) == die_after
    recovered = run_worker("map-recover", str(flow_id), str(side), str(n), str(k), str(die_after))
    assert recovered.returncode == 0, recovered.stderr
    expected = json.dumps([f"<{i}>" for i in range(n)])
    assert json.loads(recovered.stdout.strip().splitlines()[-1]) == {
        "status": "completed",
        "final_output": expected,
    }
    assert Counter(side.read_text().split()) == Counter(str(i) for i in range(n))
    store = open_store()
    try:
        snap = call(store, "load_flow", flow_id)
        assert snap.flow.status is FlowStatus.COMPLETED
        item = next(nd.id for nd in snap.flow.graph.nodes if nd.name == "M item")
        statuses = Counter(r.status for r in snap.records if r.node_id == item)
        assert statuses == {NodeStatus.FINISHED: n}
        events = list(call(store, "read_events", flow_id))
        progress = [e for e in events if isinstance(e, MapProgress)]
        # The start, then one per item: none twice, whatever the crash.
        assert [e.done for e in progress] == list(range(n + 1))
        assert progress[-1].running == 0
    finally:
        call(store, "close")

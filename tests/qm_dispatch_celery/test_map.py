"""Map1 on real Celery workers: the items are ordinary activations, so they spread
over the workers; the join lists them in item order (docs/map.md)."""

from __future__ import annotations

import json
from collections import Counter

from celery_support import Fleet

from quartermaster_engine import FlowStatus
from quartermaster_engine.events import FlowEvent, MapProgress
from quartermaster_engine.testing import call
from quartermaster_graph import Graph, GraphNode


def test_map_items_spread_over_two_workers_and_join_in_order(fleet: Fleet) -> None:
    fleet.start_workers(2, concurrency=2)
    item = GraphNode(type="work", name="Item", metadata={"sleep": 0.2})
    graph = (
        Graph("Map on the fleet")
        .map("M", items="input.split()", node=item, max_concurrency=4)
        .end()
        .build()
    )
    letters = "a b c d e f g h i j k l"
    events: list[FlowEvent] = []
    with fleet.runner(graph, on_event=events.append) as runner:
        result = runner.run(letters)
        snap = call(runner.store, "load_flow", result.flow_id)
    assert result.status is FlowStatus.COMPLETED
    assert json.loads(result.final_output) == [f"Item({x})" for x in letters.split()]
    # Each item ran once, on both workers.
    assert fleet.runs() == {"Item": 12}
    assert {fleet.worker_of(pid) for pid in fleet.pids()} == {0, 1}
    statuses = Counter(r.status.value for r in snap.records if r.node_id == item.id)
    assert statuses == {"finished": 12}
    progress = [e for e in events if isinstance(e, MapProgress)]
    assert [e.done for e in progress] == list(range(13))
    assert max(e.running for e in progress) == 4
    assert progress[-1].running == 0

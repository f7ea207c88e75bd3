"""What a flow holds of its Map1 nodes: the compiled plan of each map (`CMap`) and
the progress of each map run (`MapRun`), read from the records.

A map run's list and first item visit are stored once, in the Map1 node's
``mapping`` record; each item is an ordinary activation of the mapped node with
visit ``base + 1 + index``, delivered from that record. Which items ended is
read from the items' records (finished: done; skipped: failed), one record at
a time, so a process that restores the flow, whole or only its new records,
knows the run's progress without scanning its items (docs/map.md).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.control_nodes import MAP_JOIN, MAP_TYPE
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.stores.records import Activation
from quartermaster_graph import GraphSpec
from quartermaster_graph.validation import map_item_node

if TYPE_CHECKING:
    from quartermaster_engine.runner.compiled import CNode
    from quartermaster_engine.runner.state import FlowState


class CMap:
    """A compiled Map1 node: the node, the node it maps, and its settings."""

    __slots__ = ("item", "max_concurrency", "node", "on_item_error")

    def __init__(self, node: CNode, item: CNode) -> None:
        meta = node.node.metadata
        self.node = node
        self.item = item
        limit = meta.get("max_concurrency", 8)
        # A bad value is reported before the flow starts (`MapExecutor.validate_node`).
        ok = isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1
        self.max_concurrency: int = limit if ok else 8
        self.on_item_error = str(meta.get("on_item_error", "fail"))


def link_maps(nodes: list[CNode], by_id: dict[Any, CNode], spec: GraphSpec) -> None:
    """Give each Map1 node its plan (``cnode.map``) and its mapped node the same plan
    (``cnode.item_of``) and the map's loops (its items are in flight in them)."""
    for cnode in nodes:
        if cnode.type_name != MAP_TYPE:
            continue
        found = map_item_node(spec, cnode.node.metadata.get("node"))
        item = None if found is None else by_id.get(found.id)
        if item is None:
            continue  # validation reports it; the map then fails at run time
        plan = CMap(cnode, item)
        cnode.map = plan
        item.item_of = plan
        item.loops = cnode.loops


class MapRun:
    """One run (visit) of a Map1 node while its items run."""

    __slots__ = (
        "base",
        "ended",
        "failed",
        "items",
        "pending",
        "plan",
        "record",
        "results",
        "sources",
        "visit",
    )

    def __init__(
        self, plan: CMap, record: NodeExecution, sources: tuple[NodeExecution, ...]
    ) -> None:
        data = record.output_data
        self.plan = plan
        self.record = record
        #: What was delivered to the Map1 node (its join run gets it again).
        self.sources = sources
        self.visit = record.visit
        self.base = int(data["base"])
        self.items: list[Any] = data["items"]
        #: Indices of the items that ended, and how many of them failed.
        self.ended: set[int] = set()
        self.failed = 0
        #: Indices of the items queued or running.
        self.pending: set[int] = set()
        #: Each item's final record (None until it ended), in item order.
        self.results: list[NodeExecution | None] = [None] * len(self.items)

    @property
    def total(self) -> int:
        return len(self.items)

    def index_of(self, act_visit: int) -> int:
        return act_visit - self.base - 1

    def end(self, index: int, rec: NodeExecution) -> None:
        """Item ``index`` ended with ``rec`` (finished, or skipped: failed); counted
        once, however often it is read."""
        self.results[index] = rec
        if index in self.ended:
            return
        failed = rec.status is NodeStatus.SKIPPED
        self.ended.add(index)
        self.pending.discard(index)
        if failed:
            self.failed += 1


def first_items(state: FlowState, mapped: MapRun) -> list[Activation]:
    """What the map's start queues: its first ``max_concurrency`` items."""
    count = min(mapped.total, mapped.plan.max_concurrency)
    return [_item_activation(state, mapped, index) for index in range(count)]


def after_item(
    state: FlowState, mapped: MapRun, index: int, rec: NodeExecution
) -> list[Activation]:
    """Item ``index`` ended with ``rec``: count it, and what its commit queues: the
    item ``max_concurrency`` places on (its lane's next), and after the last item
    the Map1 node's join run. The one rule of both the runner and `history.replay`."""
    queued = []
    following = index + mapped.plan.max_concurrency
    if following < mapped.total:
        queued.append(_item_activation(state, mapped, following))
    mapped.end(index, rec)
    if len(mapped.ended) == mapped.total:
        queued.append(_join_activation(state, mapped))
    return queued


def _item_activation(state: FlowState, mapped: MapRun, index: int) -> Activation:
    item = mapped.plan.item
    act = Activation._engine(item.node_id, mapped.base + 1 + index, item, (mapped.record,))
    state.enter_loops(item)
    mapped.pending.add(index)
    return act


def _join_activation(state: FlowState, mapped: MapRun) -> Activation:
    """The Map1 node's second run, queued by its last item's commit."""
    mapping = mapped.record
    node = mapped.plan.node
    act = Activation(
        node.node_id, mapped.visit, mapping.attempt, mapping.inputs, user_input=MAP_JOIN
    )
    act.cnode = node
    act.sources = mapped.sources
    state.enter_loops(node)
    return act


def note_record(state: FlowState, cnode: CNode, rec: NodeExecution) -> None:
    """Bring the flow's map runs up to date with a record of a Map1 node or of a
    mapped node (called for every such record read or committed)."""
    plan = cnode.map
    if plan is not None:
        key = (cnode.idx, rec.visit)
        if rec.status is NodeStatus.MAPPING:
            if key not in state.maps:
                by_key = state.records_by_key
                sources = tuple(by_key[k] for k in rec.inputs)
                state.maps[key] = MapRun(plan, rec, sources)
        else:
            state.maps.pop(key, None)  # the join (or a failure) ended the run
        return
    run = _run_of(state, cnode, rec.inputs)
    if run is None:
        return
    if rec.status is NodeStatus.FINISHED or rec.status is NodeStatus.SKIPPED:
        run.end(run.index_of(rec.visit), rec)


def note_pending(state: FlowState, act: Activation) -> None:
    """A restored pending item: it counts as running."""
    run = _run_of(state, act.cnode, act.inputs)
    if run is not None:
        run.pending.add(run.index_of(act.visit))


def note_not_pending(state: FlowState, act: Activation) -> None:
    """An item activation left the stored queue (read from the store's changes)."""
    run = _run_of(state, act.cnode, act.inputs)
    if run is not None:
        run.pending.discard(run.index_of(act.visit))


def map_run(state: FlowState, act: Activation) -> MapRun:
    """The map run an item activation belongs to."""
    run = _run_of(state, act.cnode, act.inputs)
    if run is None:
        raise FlowStateError(
            f"flow {state.flow_id}: item {act.cnode.describe()} visit {act.visit} "
            "belongs to no running map"
        )
    return run


def item_of(state: FlowState, act: Activation) -> tuple[int, Any]:
    """(index, item) of an item activation."""
    run = map_run(state, act)
    index = run.index_of(act.visit)
    return index, run.items[index]


def item_text(state: FlowState, act: Activation) -> str:
    """An item activation's input: the item, a text as it is, anything else as JSON."""
    return as_text(item_of(state, act)[1])


def as_text(item: Any) -> str:
    """An item as its activation's input text: a text as it is, anything else as JSON."""
    return item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)


def item_of_record(mapping: NodeExecution, visit: int) -> Any:
    """The item of visit ``visit`` of the map whose start ``mapping`` recorded."""
    data = mapping.output_data
    return data["items"][visit - int(data["base"]) - 1]


def item_memory(state: FlowState, act: Activation) -> dict[str, Any]:
    """The memory an item's executor sees: flow memory plus ``item`` and ``index``."""
    index, item = item_of(state, act)
    return {**state.memory_snapshot(), "item": item, "index": index}


def _run_of(state: FlowState, cnode: CNode, inputs: tuple[Any, ...]) -> MapRun | None:
    plan = cnode.item_of
    if plan is None or not inputs:
        return None
    return state.maps.get((plan.node.idx, inputs[0][1]))

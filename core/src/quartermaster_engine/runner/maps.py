"""A Map1 node's outcomes: the map starts, an item ends, the items join.

The Map1 node's first run evaluates its list (its executor). A non-empty list
starts the map: one commit ends the node's activation with a ``mapping``
record holding the list and the first item visit, and queues the first
``max_concurrency`` items. Each item's commit, fenced like any activation's,
queues the item ``max_concurrency`` places further on (each item frees its
lane for one more), and the last item's commit queues the Map1 node again for
the join: its second run reads the items' records in order and goes on like
any node's success, the list in flow memory under the node's name and, as
JSON, its output. The cost per item does not depend on the list's length.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.control_nodes import MAP_JOIN
from quartermaster_engine.events import FlowEvent, MapProgress, NodeSkipped
from quartermaster_engine.nodes import NodeResult
from quartermaster_engine.runner import usage_counts
from quartermaster_engine.runner.commits import commit_and_apply, committed, record
from quartermaster_engine.runner.compiled import CNode
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.map_state import CMap, MapRun, after_item, first_items, map_run
from quartermaster_engine.stores.records import Activation, Commit

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun


async def map_result(
    run: FlowRun, act: Activation, result: NodeResult, started: float
) -> NodeResult | None:
    """A Map1 node's successful run: the result to go on with (an empty list, or the
    join), or None when the map started (its commit is made)."""
    cnode: CNode = act.cnode
    plan = cnode.map
    assert plan is not None
    if act.user_input == MAP_JOIN:
        return join(run, act, plan)
    items = list(result.data.get("map_items") or ())
    if not items:
        return NodeResult(output_text="[]", data={"memory_updates": {_memory_key(plan): []}})
    await start(run, act, plan, items, started)
    return None


async def start(
    run: FlowRun, act: Activation, plan: CMap, items: list[Any], started: float
) -> None:
    """End the Map1 node's activation with its ``mapping`` record; queue the first items."""
    state = run.state
    item = plan.item
    base = state.visits[item.idx]
    state.visits[item.idx] = base + len(items)
    rec = record(act, NodeStatus.MAPPING, started, None, {"items": items, "base": base}, None)
    mapped = MapRun(plan, rec, act.sources)
    commit = Commit(act.key, rec, enqueue=first_items(state, mapped))
    event = _progress(run, mapped) if run.emitter.listening else None
    await commit_and_apply(run, plan.node, rec, commit, event)
    state.maps[(plan.node.idx, act.visit)] = mapped


def _progress(run: FlowRun, mapped: MapRun) -> MapProgress:
    node = mapped.plan.node
    return MapProgress(
        flow_id=run.flow_id,
        node_id=node.node_id,
        node_name=node.name,
        visit=mapped.visit,
        total=mapped.total,
        done=len(mapped.ended),
        failed=mapped.failed,
        running=len(mapped.pending),
    )


async def item_ended(
    run: FlowRun,
    act: Activation,
    rec: NodeExecution,
    memory: dict[str, Any] | None,
    event: FlowEvent | None,
) -> None:
    """Commit an item's record (finished, or skipped: failed), queue the next item of
    its lane, or the join after the last item."""
    cnode: CNode = act.cnode
    plan = cnode.item_of
    assert plan is not None
    state = run.state
    mapped = map_run(state, act)
    index = mapped.index_of(act.visit)
    commit = Commit(act.key, rec, memory, enqueue=after_item(state, mapped, index, rec))
    router = run.router
    router.settle(cnode, commit)
    emitter = run.emitter
    handles = []
    if emitter.listening:
        if event is not None:
            handles.append(emitter.stage(event))
        handles.append(emitter.stage(_progress(run, mapped)))
    # An item's usage counts like any node's.
    local = usage_counts.stage(run, cnode, rec, commit) if run.caller.counts_usage else None
    try:
        await committed(run, commit, None)
    except BaseException:
        for handle in handles:
            emitter.drop(handle)
        raise
    if local is not None:
        usage_counts.add_local(run, local)
    state.apply(commit, cnode, rec)
    for handle in handles:
        emitter.release(handle)


async def item_failed(
    run: FlowRun, act: Activation, result: NodeResult, started: float, error: str
) -> None:
    """An item failed for good under ``skip`` or ``collect``: a skipped record."""
    cnode: CNode = act.cnode
    rec = record(act, NodeStatus.SKIPPED, started, None, result.data, error)
    event = None
    if run.emitter.listening:
        event = NodeSkipped(
            flow_id=run.flow_id, node_id=cnode.node_id, node_name=cnode.name, error=error
        )
    await item_ended(run, act, rec, None, event)


def item_failure(run: FlowRun, act: Activation, error: str) -> str:
    """An item's error under ``fail``, naming the map and the item."""
    plan: CMap = act.cnode.item_of
    index = map_run(run.state, act).index_of(act.visit)
    return f"item {index} of map {plan.node.describe()} failed: {error}"


def join(run: FlowRun, act: Activation, plan: CMap) -> NodeResult:
    """The items' results in item order: outputs of finished items; a failed item is
    left out (``skip``) or is ``{"error": ...}`` (``collect``)."""
    state = run.state
    mapped = state.maps.pop((plan.node.idx, act.visit))
    collect = plan.on_item_error == "collect"
    results: list[Any] = []
    for index, rec in enumerate(mapped.results):
        if rec is None:
            raise FlowStateError(
                f"flow {run.flow_id}: map {plan.node.describe()} joins before item {index} ended"
            )
        if rec.status is NodeStatus.FINISHED:
            results.append(rec.result or "")
        elif collect:
            results.append({"error": rec.error or "failed"})
    data = {
        "memory_updates": {_memory_key(plan): results},
        "map": {"total": mapped.total, "failed": mapped.failed},
    }
    return NodeResult(output_text=json.dumps(results, ensure_ascii=False), data=data)


def _memory_key(plan: CMap) -> str:
    """Where the results go in flow memory: the Map1 node's name (else its id)."""
    return plan.node.name or str(plan.node.node_id)

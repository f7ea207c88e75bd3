"""Forks that reuse what did not change: ``fork(..., reuse="unchanged")``.

A fork's activation whose inputs are the same as those of the same (node,
visit) in the flow it was forked from gets that flow's recorded result instead
of running its executor (no LLM or tool call happens), with a `NodeReused`
event before its `NodeFinished`, in the same commit.

The inputs compared: the input text, the input messages (as the executor's
context gives them, cut to the context window), the node's metadata, the
person's answer, and the flow memory the executor reads (`ReadsMemory`; all of
the flow memory when it cannot tell). Both sides are computed when the fork's
activation is about to run, by the same code (`NodeInputs`): the fork's from its
state, the original's from its records (the memory as it stood before that
record's commit, the histories of the records delivered to it). Nothing is
written for this while any flow runs: the original is read once, when the fork
is loaded to run, and only for a fork that asked for reuse.

Only finished records are reused, and a Map1 node's start (its ``mapping``
record: the list it mapped, when its own inputs did not change; its items are
activations like any, each reused when its item and inputs did not change; the
join runs, reading the items' records); a decision's pick is the branch the original
took (the node that received its output). The original's memory is taken as
it stood after the commits before the node's record: exactly what the node saw
when nodes ran one at a time; with concurrent branches, a sibling's write that
landed while the node ran counts as seen by it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.control_nodes import MAP_JOIN
from quartermaster_engine.events import FlowEdited, FlowEvent, FlowForked, NodeReused
from quartermaster_engine.history.checkpoints import initial_memory, timeline
from quartermaster_engine.history.replay import memory_updates, receivers
from quartermaster_engine.messaging.context_manager import ContextManager
from quartermaster_engine.messaging.history import rebuild_log
from quartermaster_engine.nodes import NodeResult, ReadsMemory
from quartermaster_engine.runner.compiled import OUT_PICKED, CNode, CompiledGraph
from quartermaster_engine.runner.deadlines import took_deadline_edge
from quartermaster_engine.runner.executor_call import ExecutorCaller
from quartermaster_engine.runner.map_state import as_text, item_of_record
from quartermaster_engine.runner.node_inputs import NodeInputs
from quartermaster_engine.runner.state import FlowState
from quartermaster_engine.stores.records import Activation, ActivationKey, FlowSnapshot

if TYPE_CHECKING:
    from quartermaster_engine.runner.control import RunControl
    from quartermaster_engine.runner.engine import Engine
    from quartermaster_engine.runner.flow_run import FlowRun
    from quartermaster_engine.runner.host import RunHost

#: The one reuse mode: reuse a node's result when its inputs did not change.
UNCHANGED = "unchanged"

#: The records reused: a node's result, and a Map1 node's start (its list).
_REUSED = (NodeStatus.FINISHED, NodeStatus.MAPPING)


def reuse_arg(reuse: str | None) -> str | None:
    """``reuse`` checked: None or ``"unchanged"``."""
    if reuse is not None and reuse != UNCHANGED:
        raise ValueError(f"reuse must be None or {UNCHANGED!r}, got {reuse!r}")
    return reuse


def fingerprint(
    inputs: NodeInputs,
    act: Activation,
    input_text: str,
    memory: Mapping[str, Any],
    reads: Collection[str] | None,
) -> str:
    """The canonical JSON of what ``act`` is given (compared, never stored)."""
    seen = memory if reads is None else {k: memory[k] for k in reads if k in memory}
    cnode: CNode = act.cnode
    return json.dumps(
        {
            "input": input_text,
            "messages": [m.to_dict() for m in inputs.messages(act)],
            "memory": dict(seen),
            "metadata": cnode.metadata,
            "answer": act.user_input,
        },
        sort_keys=True,
        ensure_ascii=False,
        default=repr,
    )


class _Seen:
    """A finished record of the original, with what its activation was given."""

    __slots__ = ("memory", "rec", "sources")

    def __init__(
        self, rec: NodeExecution, memory: Mapping[str, Any], sources: tuple[NodeExecution, ...]
    ) -> None:
        self.rec = rec
        self.memory = memory
        self.sources = sources


class Original:
    """The flow a fork came from, indexed for reuse: its finished records by (node,
    visit), each with the memory before it and the records delivered to it."""

    def __init__(
        self,
        compiled: CompiledGraph,
        snapshot: FlowSnapshot,
        edits: Sequence[FlowEdited],
        context_manager: ContextManager,
    ) -> None:
        flow = snapshot.flow
        self.flow_id = flow.flow_id
        self.cg = compiled
        self._state = FlowState(compiled, flow.flow_id, flow.input)
        self._inputs = NodeInputs(compiled, self._state, context_manager)
        self._received = receivers(snapshot)
        self.seen: dict[ActivationKey, _Seen] = {}
        #: A Map1 node's start (its ``mapping`` record: the list it mapped).
        self.mapped: dict[ActivationKey, _Seen] = {}
        memory: Mapping[str, Any] = initial_memory(snapshot, edits)
        by_key: dict[ActivationKey, NodeExecution] = {}
        for item in timeline(snapshot.records, edits):
            if isinstance(item, FlowEdited):
                if item.memory:
                    memory = MappingProxyType({**memory, **item.memory})
                continue
            rec = item
            if rec.log is None:
                rec.log = rebuild_log(rec, by_key)
            if rec.status in _REUSED and all(k in by_key for k in rec.inputs):
                found = self.seen if rec.status is NodeStatus.FINISHED else self.mapped
                found[rec.key] = _Seen(rec, memory, tuple(by_key[k] for k in rec.inputs))
            prev = by_key.get(rec.key)
            if prev is None or rec.attempt >= prev.attempt:
                by_key[rec.key] = rec
            updates = memory_updates(rec)
            if updates:
                memory = MappingProxyType({**memory, **updates})

    def result_for(self, run: FlowRun, act: Activation, input_text: str) -> NodeResult | None:
        """The original's result for ``act`` when its inputs are the same, else None."""
        cnode: CNode = act.cnode
        if cnode.map is None:
            seen = self.seen.get(act.key)
        elif act.user_input == MAP_JOIN:
            return None  # (the join reads the items' records: it is no executor's work)
        else:
            seen = self.mapped.get(act.key)  # a map's start: the list it mapped
        if seen is None:
            return None
        found = run.caller.executor(cnode)
        executor = found[0] if found is not None else None
        reads = executor.memory_reads(cnode.node) if isinstance(executor, ReadsMemory) else None
        rec = seen.rec
        then = Activation(
            rec.node_id, rec.visit, rec.attempt, rec.inputs, user_input=rec.user_input
        )
        then.cnode = cnode
        then.sources = seen.sources
        self._state.memory = dict(seen.memory)
        if cnode.item_of is None:
            their_text = self._inputs.input_text(then)
        elif seen.sources and seen.sources[0].status is NodeStatus.MAPPING:
            their_text = as_text(item_of_record(seen.sources[0], rec.visit))
        else:
            return None  # (an item delivered from no map's start: never reused)
        theirs = fingerprint(self._inputs, then, their_text, seen.memory, reads)
        mine = fingerprint(run.inputs, act, input_text, run.state.memory, reads)
        if mine != theirs:
            return None
        if took_deadline_edge(cnode, rec) is not None:
            return None  # (it took its deadline edge: this run waits again)
        if cnode.map is not None:
            return NodeResult(success=True, data={"map_items": list(rec.output_data["items"])})
        picked: str | None = None
        if cnode.out_mode == OUT_PICKED:
            picked = self._picked(cnode, rec)
            if picked is None:
                return None
        return NodeResult(
            success=True, data=dict(rec.output_data), output_text=rec.result, picked_node=picked
        )

    def _picked(self, cnode: CNode, rec: NodeExecution) -> str | None:
        """An answer selecting the branch the original took (None: unknown)."""
        receivers = self._received.get(rec.key, ())
        for edge in cnode.out_edges:
            if edge.target.node_id in receivers:
                for answer in (str(edge.target.node_id), edge.target.name, edge.label):
                    if answer and self.cg.pick(cnode, answer) is edge:
                        return answer
        return None


class ReusingCaller(ExecutorCaller):
    """An `ExecutorCaller` that first offers the original's result (a fork's run only:
    other runs keep the plain caller, so ordinary flows pay nothing)."""

    __slots__ = ("original",)

    def __init__(self, host: RunHost, control: RunControl, original: Original) -> None:
        super().__init__(host, control)
        self.original = original

    async def call(
        self, run: FlowRun, act: Activation, input_text: str, *, keys_held: bool = False
    ) -> NodeResult:
        result = self.original.result_for(run, act, input_text)
        if result is None:
            return await super().call(run, act, input_text, keys_held=keys_held)
        if run.emitter.listening:
            cnode: CNode = act.cnode
            run.emit(
                NodeReused(
                    flow_id=run.flow_id,
                    node_id=cnode.node_id,
                    node_name=cnode.name,
                    visit=act.visit,
                    from_flow=self.original.flow_id,
                )
            )
        return result


async def arm(engine: Engine, run: FlowRun) -> None:
    """Make ``run`` reuse unchanged results when its flow is a fork that asked for it.

    One read of the flow's first event; the original is read only for such a fork."""
    store = engine.store_adapter
    first: list[FlowEvent] = await store.read_events(run.flow_id, 0, 1)
    if not first:
        return
    forked = first[0]
    if not isinstance(forked, FlowForked) or forked.reuse != UNCHANGED:
        return
    source = forked.from_flow
    if source is None:
        return
    snapshot: FlowSnapshot | None = await store.load_flow(source)
    if snapshot is None:  # the original was deleted: nothing to reuse
        return
    events: list[FlowEvent] = await store.read_events(source)
    edits = [e for e in events if isinstance(e, FlowEdited)]
    original = Original(run.cg, snapshot, edits, engine.context_manager)
    run.caller = ReusingCaller(run.host, run.control, original)


def reused_keys(events: Sequence[FlowEvent]) -> set[tuple[UUID, int]]:
    """(node, visit) of every activation a flow's events say was reused."""
    return {(e.node_id, e.visit) for e in events if isinstance(e, NodeReused)}


__all__ = [
    "UNCHANGED",
    "Original",
    "ReusingCaller",
    "arm",
    "fingerprint",
    "reuse_arg",
    "reused_keys",
]

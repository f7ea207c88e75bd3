"""`fork`: a new flow whose state is another's at one of its checkpoints, with
edits; the lineage (flow and checkpoint) is its first event (`FlowForked`).

The new flow is built by the store's own commits: the start commit, then each
commit of the original up to the checkpoint rebuilt from its records
(`Replay`), then the edits. So its records up to there are the original's,
and its queue, join slots and loop marks are what the original's were then.
Nothing runs: `Engine.recover` drives it (`qm flows fork` does), and nodes after
the checkpoint run again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict
from uuid import UUID, uuid4

from quartermaster_engine.control_nodes import wake_time
from quartermaster_engine.events import FlowEdited, FlowEvent, FlowForked
from quartermaster_engine.history.checkpoints import timeline
from quartermaster_engine.history.edits import memory_arg
from quartermaster_engine.history.held import Held, read_flow
from quartermaster_engine.history.replay import Replay, copy_activation
from quartermaster_engine.history.reuse import reuse_arg
from quartermaster_engine.runner.arguments import text_arg
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.outcomes import deadline_seconds
from quartermaster_engine.stores.records import Activation, Commit, FlowRecord, FlowStatus
from quartermaster_graph.enums import NodeType

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine


class ForkEdits(TypedDict, total=False):
    """What `Engine.fork` takes besides the flow id (see `fork`)."""

    at: int | None
    memory: Mapping[str, Any] | None
    input: str | None
    answer: str | None
    reuse: str | None


async def fork(
    engine: Engine,
    flow_id: UUID,
    *,
    at: int | None = None,
    memory: Mapping[str, Any] | None = None,
    input: str | None = None,
    answer: str | None = None,
    reuse: str | None = None,
    new_flow_id: UUID | None = None,
) -> UUID:
    """Store a fork of ``flow_id`` at checkpoint ``at`` (default: its last; 0:
    before anything ran) and return its id. ``memory`` sets flow-memory values,
    ``input`` replaces the flow input, ``answer`` answers the node that waits at
    that checkpoint (`FlowStateError` if none does). ``reuse="unchanged"``: when the
    fork runs, a node whose inputs are the same as in the original reuses its
    recorded result instead of running (see `history.reuse`)."""
    reuse_arg(reuse)
    values = memory_arg(memory) if memory is not None else None
    if input is not None:
        text_arg(input, "input")
    if answer is not None:
        text_arg(answer, "answer")
    snapshot, events = await read_flow(engine, flow_id, "forking a flow")
    source = Held(snapshot, events, 0)
    items = timeline(snapshot.records, source.edits)
    point = len(items) if at is None else at
    if isinstance(point, bool) or not isinstance(point, int) or not 0 <= point <= len(items):
        raise ValueError(
            f"at must be a checkpoint of flow {flow_id}: a number from 0 to {len(items)}, "
            f"got {at!r}"
        )
    compiled = engine.compiled_for(snapshot.flow.graph)
    engine.preflight(compiled)
    replay = Replay(compiled, snapshot, source.asked, engine.max_visits)
    fid = new_flow_id if new_flow_id is not None else uuid4()
    now = time.time()
    epoch = 1
    seq = 1
    first = replay.start()
    first.events = [
        FlowForked(flow_id=fid, seq=seq, ts=now, from_flow=flow_id, at=point, reuse=reuse)
    ]
    commits = [first]
    records = 0
    for item in items[:point]:
        if isinstance(item, FlowEdited):
            commits.append(Commit(memory=dict(item.memory) or None))
        else:
            commits.extend(replay.step(item))
            records += 1
    if values is not None:
        seq += 1
        edit = FlowEdited(flow_id=fid, seq=seq, ts=now, memory=values, after_record=records)
        commits.append(Commit(memory=values, events=[edit]))
    if answer is not None:
        commits.append(_answer(replay, flow_id, point, answer))
    again = _timers_from_now(replay, engine.clock.now())
    if again is not None:
        commits.append(again)
    store = engine.store_adapter
    await store.create_flow(
        FlowRecord(
            flow_id=fid,
            graph=snapshot.flow.graph,
            input=snapshot.flow.input if input is None else input,
            status=FlowStatus.RUNNING,
            created_at=now,
            updated_at=now,
            lease_owner=engine.owner,
            lease_epoch=epoch,
            lease_expires=now + engine.lease_seconds,
        ),
    )
    try:
        for commit in commits:
            commit.epoch = epoch
            await store.commit(fid, commit)
    finally:
        await store.release_lease(fid, epoch)
    return fid


def _answer(replay: Replay, flow_id: UUID, at: int, answer: str) -> Commit:
    """The commit answering the node that waits at checkpoint ``at`` of ``flow_id``
    (the fork is not stored yet: the error names the flow forked and the checkpoint)."""
    waiting = [act for act in replay.pending.values() if act.waiting]
    if not waiting:
        raise FlowStateError(
            f"answer given but no node of flow {flow_id} waits for input at checkpoint {at}"
        )
    act = waiting[0]
    answered = copy_activation(act, waiting=False, user_input=answer)
    replay.pending[act.key] = answered
    return Commit(enqueue=[answered], answers=act.key)


def _timers_from_now(replay: Replay, now: float) -> Commit | None:
    """A fork's timers count from the fork: a Sleep1 pending at the checkpoint sleeps
    its duration again from ``now`` (an ``until`` keeps its time), and a wait with a
    deadline gets its ``timeout`` again from ``now`` (docs/time.md)."""
    again: list[Activation] = []
    for act in replay.pending.values():
        node = act.cnode.node
        if act.waiting and "timeout" in node.metadata:
            new = copy_activation(act)
            new.not_before = now + deadline_seconds(node.metadata["timeout"])
        elif act.not_before and node.type_name == NodeType.SLEEP.value:
            wake_at = wake_time(node, now)
            new = copy_activation(act, user_input=repr(wake_at))
            new.not_before = wake_at
        else:
            continue
        replay.pending[act.key] = new
        again.append(new)
    return Commit(enqueue=again) if again else None


async def lineage(engine: Engine, flow_id: UUID) -> tuple[UUID, int] | None:
    """(flow, checkpoint) a fork began from, or None for a flow that is no fork."""
    events: list[FlowEvent] = await engine.store_adapter.read_events(flow_id, 0, 1)
    if events and isinstance(events[0], FlowForked) and events[0].from_flow is not None:
        return events[0].from_flow, events[0].at
    return None


__all__ = ["ForkEdits", "fork", "lineage"]

"""Changing a stored flow by id: set memory values of a paused, failed or stopped
flow (`update`), and run a failed flow again from its failed activation
(`retry`). Each holds the flow's lease while it writes (see `held`)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict
from uuid import UUID

from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.events import FlowEdited, FlowResumed
from quartermaster_engine.flow_result import FlowResult
from quartermaster_engine.history.checkpoints import timeline
from quartermaster_engine.history.held import Held, held
from quartermaster_engine.history.message_edits import messages_arg
from quartermaster_engine.history.replay import Replay, copy_activation
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.listeners import Listener
from quartermaster_engine.stores.records import Commit, FlowStatus, FlowUpdate
from quartermaster_engine.types import Message

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine

#: The statuses a flow may be edited in.
EDITABLE = (FlowStatus.PAUSED, FlowStatus.FAILED, FlowStatus.STOPPED)


def memory_arg(memory: Mapping[str, Any] | None) -> dict[str, Any]:
    """``memory`` checked: a non-empty mapping of text keys."""
    if not isinstance(memory, Mapping) or not memory:
        raise ValueError(f"memory must be a non-empty dict of values to set, got {memory!r}")
    bad = [k for k in memory if not isinstance(k, str)]
    if bad:
        raise ValueError(f"memory keys must be text; got {bad[0]!r}")
    return dict(memory)


class Edit(TypedDict, total=False):
    """What `Engine.update` takes besides the flow id (see `update`)."""

    memory: Mapping[str, Any] | None
    messages: Sequence[Message | dict[str, Any]] | None
    node: UUID | str | None


async def update(
    engine: Engine,
    flow_id: UUID,
    memory: Mapping[str, Any] | None = None,
    messages: Sequence[Message | dict[str, Any]] | None = None,
    node: UUID | str | None = None,
) -> int:
    """Set flow-memory values of a paused, failed or stopped flow, and/or replace the
    input messages of the node that runs next (``messages``: the waiting node of a
    paused flow, the failed node of a failed flow; ``node`` names it when several
    wait), logged as one `FlowEdited` event; return the edit's checkpoint number.

    A paused flow is changed by one fenced commit. An ended flow takes no commits
    (its queue is gone): its memory is written under the flow's lease, then the
    event; `retry` or a fork then runs with it. Edited messages are read back from
    the event when the flow runs again (`message_edits`)."""
    if memory is None and messages is None:
        raise ValueError("nothing to edit: give memory={...} and/or messages=[...]")
    values = memory_arg(memory) if memory is not None else {}
    new_messages = messages_arg(messages) if messages is not None else None
    async with held(engine, flow_id, "editing a flow") as flow:
        snapshot = flow.snapshot
        record = snapshot.flow
        if record.status not in EDITABLE:
            raise FlowStateError(
                f"flow {flow_id} is {record.status.value}; only a paused, failed or stopped "
                "flow can be edited"
            )
        target = None
        if new_messages is not None:
            target = _message_target(flow, node)
        now = time.time()
        event = FlowEdited(
            flow_id=flow_id,
            seq=record.event_seq + 1,
            ts=now,
            memory=values,
            node_id=target,
            messages=None if new_messages is None else [m.to_dict() for m in new_messages],
            after_record=snapshot.record_count,
        )
        store = engine.store_adapter
        if record.status is FlowStatus.PAUSED:
            commit = Commit(memory=values or None, epoch=flow.epoch, events=[event])
            await store.commit(flow_id, commit)
        else:
            for key, value in values.items():
                await store.save_memory(flow_id, key, value)
            await store.update_flow(
                flow_id,
                FlowUpdate(
                    status=record.status,
                    updated_at=now,
                    error=record.error,
                    final_output=record.final_output,
                    event_seq=event.seq,
                    events=[event],
                ),
            )
        return snapshot.record_count + len(flow.edits) + 1


def _message_target(flow: Held, node: UUID | str | None) -> UUID:
    """The node whose next activation gets edited messages: a waiting node of a
    paused flow, the node that failed a failed flow."""
    snapshot = flow.snapshot
    record = snapshot.flow
    names = {n.id: n.name for n in record.graph.nodes}
    if record.status is FlowStatus.PAUSED:
        candidates = [act.node_id for act in snapshot.pending if act.waiting]
        what = "waiting"
    elif record.status is FlowStatus.FAILED:
        failed = [r.node_id for r in snapshot.records if r.status is NodeStatus.FAILED]
        candidates = failed[-1:]
        what = "that failed the flow"
    else:
        raise FlowStateError(
            f"flow {record.flow_id} is {record.status.value}; messages can be edited only "
            "in a paused flow (for its waiting node) or a failed one (for the node that "
            "failed it): a stopped flow runs no node again"
        )
    if not candidates:
        raise FlowStateError(f"flow {record.flow_id} has no node {what} to edit messages of")
    if node is None:
        return candidates[0]
    for node_id in candidates:
        if node in (node_id, names.get(node_id), str(node_id)):
            return node_id
    listed = ", ".join(repr(names.get(n, str(n))) for n in candidates)
    raise FlowStateError(f"node {node!r} of flow {record.flow_id} is not the node {what}: {listed}")


async def retry(engine: Engine, flow_id: UUID, listeners: Iterable[Listener] = ()) -> FlowResult:
    """Continue a failed flow from the activation that failed it (a new attempt),
    with what else was pending when it failed; committed nodes stay as they are.

    The flow's frontier, dropped by the store when the flow failed, is rebuilt by
    replaying its records (`Replay`), written back under the flow's lease with the
    flow reopened, and the flow is then recovered (driven here) to its end or pause."""
    async with held(engine, flow_id, "retrying a flow") as flow:
        snapshot = flow.snapshot
        record = snapshot.flow
        if record.status is not FlowStatus.FAILED:
            raise FlowStateError(
                f"flow {flow_id} is {record.status.value}; only a failed flow can be retried"
            )
        compiled = engine.compiled_for(record.graph)
        engine.preflight(compiled)
        replay = Replay(compiled, snapshot, flow.asked, engine.max_visits)
        replay.start()
        for item in timeline(snapshot.records, flow.edits):
            if not isinstance(item, FlowEdited):
                replay.step(item)
        if not replay.failed:
            raise FlowStateError(
                f"flow {flow_id} failed with no node left to run again ({record.error}); "
                "nothing to retry"
            )
        again = [copy_activation(act, attempt=act.attempt + 1) for act in replay.failed]
        now = time.time()
        store = engine.store_adapter
        await store.update_flow(
            flow_id,
            FlowUpdate(status=FlowStatus.RUNNING, updated_at=now, event_seq=record.event_seq),
        )
        event = FlowResumed(
            flow_id=flow_id,
            seq=record.event_seq + 1,
            ts=now,
            reason="retry",
            graph_name=record.graph.name,
        )
        await store.commit(
            flow_id,
            Commit(
                deliveries=replay.deliveries(),
                enqueue=[*replay.pending.values(), *again],
                loop_exits=replay.loop_exits(),
                epoch=flow.epoch,
                events=[event],
            ),
        )
    return await engine.recover(flow_id, listeners=listeners)


__all__ = ["EDITABLE", "Edit", "memory_arg", "retry", "update"]

"""Edited message histories: ``engine.update(flow_id, messages=[...])``.

An edit of messages replaces the input messages of the activation that runs
next at one node: the node waiting in a paused flow (it sees them when it is
answered), or the node that failed a failed flow (it sees them on `retry`).
The edit is a `FlowEdited` event (``node_id``, ``messages``), fenced like a
memory edit. A run picks it up when the flow is loaded to run again: the
events at the end of the log after the flow stopped running (edits, and the
`FlowResumed` of a retry) are read back, a few at a time, until another kind of
event; those are the edits not yet run with. Only such a run builds inputs with
`EditedInputs`; other runs keep the plain `NodeInputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from quartermaster_engine.events import FlowEdited, FlowEvent, FlowResumed
from quartermaster_engine.messaging.context_manager import ContextManager
from quartermaster_engine.messaging.history import MessageLog
from quartermaster_engine.runner.compiled import CompiledGraph
from quartermaster_engine.runner.node_inputs import NodeInputs
from quartermaster_engine.runner.state import FlowState
from quartermaster_engine.stores.records import Activation, ActivationKey
from quartermaster_engine.types import Message

if TYPE_CHECKING:
    from quartermaster_engine.runner.engine import Engine
    from quartermaster_engine.runner.flow_run import FlowRun

#: Events read back per read when looking for edits not yet run with.
_CHUNK = 8


def messages_arg(messages: Sequence[Message | dict[str, Any]] | None) -> list[Message]:
    """``messages`` checked: a non-empty list of `Message` or ``{"role", "content"}`` dicts."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise ValueError(f"messages must be a non-empty list of messages, got {messages!r}")
    out: list[Message] = []
    for item in messages:
        if isinstance(item, Message):
            out.append(item)
            continue
        try:
            out.append(Message.from_dict(dict(item)))
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"each message must be a Message or a dict with 'role' (system, user, "
                f"assistant, tool) and 'content'; got {item!r}"
            ) from None
    return out


class EditedInputs(NodeInputs):
    """`NodeInputs` whose edited activations get the edited messages as their input
    history (the context window still applies)."""

    __slots__ = ("edited",)

    def __init__(
        self,
        compiled: CompiledGraph,
        state: FlowState,
        context_manager: ContextManager,
        edited: dict[ActivationKey, list[Message]],
    ) -> None:
        super().__init__(compiled, state, context_manager)
        self.edited = edited

    def parts(
        self, act: Activation
    ) -> tuple[list[Message | MessageLog], list[ActivationKey], Message | None]:
        edited = self.edited.get(act.key)
        if edited is None:
            return super().parts(act)
        return list(edited), [], None


def apply(run: FlowRun, edits: Sequence[FlowEdited]) -> None:
    """Make ``run`` give the edited messages to the next activation of each edited
    node (the last edit of a node wins)."""
    by_node = {e.node_id: e.messages for e in edits if e.messages is not None and e.node_id}
    if not by_node:
        return
    state = run.state
    edited: dict[ActivationKey, list[Message]] = {}
    for act in [*state.waiting.values(), *state.ready]:
        messages = by_node.get(act.node_id)
        if messages is not None and act.key not in edited:
            edited[act.key] = [Message.from_dict(m) for m in messages]
    if not edited:
        return
    inputs = EditedInputs(run.cg, state, run.inputs.context_manager, edited)
    run.inputs = inputs
    run.view.use_inputs(inputs)


async def arm(engine: Engine, run: FlowRun) -> None:
    """Apply the message edits made since the flow last ran (see the module)."""
    store = engine.store_adapter
    end = run.emitter.seq
    pending: list[FlowEdited] = []
    while end > 0:
        start = max(0, end - _CHUNK)
        chunk: list[FlowEvent] = await store.read_events(run.flow_id, start, end - start)
        done = False
        for event in reversed(chunk):
            if isinstance(event, FlowEdited):
                pending.append(event)
            elif not isinstance(event, FlowResumed):
                done = True
                break
        if done or not chunk:
            break
        end = start
    pending.reverse()
    apply(run, pending)


__all__ = ["EditedInputs", "apply", "arm", "messages_arg"]

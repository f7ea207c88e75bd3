"""`RunView`: a flow run as its executors' contexts see it (the `NodeRun` interface),
built once per run from the run's parts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID

from quartermaster_engine.memory.persistent_memory import AgentMemory
from quartermaster_engine.types import GraphSpec, Message

if TYPE_CHECKING:
    from quartermaster_engine.events import FlowEvent
    from quartermaster_engine.flow_result import FlowResult
    from quartermaster_engine.runner.control import RunControl
    from quartermaster_engine.runner.emitter import Emitter
    from quartermaster_engine.runner.host import RunHost
    from quartermaster_engine.runner.node_inputs import NodeInputs
    from quartermaster_engine.runner.state import FlowState
    from quartermaster_engine.stores.records import Activation

ChildRunner = Callable[[GraphSpec, str, UUID], Awaitable["FlowResult"]]
ChildResumer = Callable[[UUID, str, "UUID | str | None"], Awaitable["FlowResult"]]


def _run_over(*_: object) -> NoReturn:
    raise RuntimeError("this flow's run is over: its context can no longer start child flows")


def _stopped(reason: str) -> None:
    """Stopping a run that is over does nothing."""


class RunView:
    """Implements `context.node_run.NodeRun` over a run's parts; holds no run."""

    __slots__ = (
        "_child",
        "_control",
        "_emitter",
        "_host",
        "_inputs",
        "_resume_child",
        "_state",
        "_stop",
        "flow_id",
        "graph",
    )

    def __init__(
        self,
        flow_id: UUID,
        graph: GraphSpec,
        *,
        host: RunHost,
        state: FlowState,
        inputs: NodeInputs,
        emitter: Emitter,
        control: RunControl,
        stop: Callable[[str], None],
        child: ChildRunner,
        resume_child: ChildResumer,
    ) -> None:
        self.flow_id = flow_id
        self.graph = graph
        self._host = host
        self._state = state
        self._inputs = inputs
        self._emitter = emitter
        self._control = control
        self._stop = stop
        self._child = child
        self._resume_child = resume_child

    def detach(self) -> None:
        """The run is over: it is no longer reached (a stop does nothing, child flows refuse)."""
        self._stop = _stopped
        self._child = self._resume_child = _run_over

    def use_inputs(self, inputs: NodeInputs) -> None:
        """Build activations' inputs with ``inputs`` from now on (a run whose flow
        has edited message histories: `history.message_edits`)."""
        self._inputs = inputs

    def input_messages(self, act: Activation) -> list[Message]:
        return self._inputs.messages(act)

    def predecessor_outputs(self, act: Activation) -> dict[str, str]:
        return self._inputs.predecessor_outputs(act)

    def memory_snapshot(self) -> dict[str, Any]:
        return self._state.memory_snapshot()

    @property
    def persistence(self) -> Any:
        return self._host.persistence

    @property
    def agent_memory(self) -> AgentMemory:
        return self._host.agent_memory

    @property
    def cancel_requested(self) -> bool:
        return self._control.cancel_requested

    @property
    def listening(self) -> bool:
        return self._emitter.listening

    def emit_token(self, act: Activation, token: str) -> None:
        self._emitter.token(act, token)

    def emit_threadsafe(self, event: FlowEvent) -> None:
        self._emitter.emit_threadsafe(event)

    def request_stop_threadsafe(self, reason: str) -> None:
        self._stop(reason)

    async def run_child(self, graph: GraphSpec, input_text: str, flow_id: UUID) -> FlowResult:
        return await self._child(graph, input_text, flow_id)

    async def resume_child(
        self, flow_id: UUID, user_input: str, node_id: UUID | str | None
    ) -> FlowResult:
        return await self._resume_child(flow_id, user_input, node_id)

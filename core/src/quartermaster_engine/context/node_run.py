"""`NodeRun`: what an executor's context may ask of the flow it runs in.

The context sees this narrow, declared interface, never the runner's flow
object: the runner implements it (`runner.run_view.RunView`), and nothing in
``context/`` imports ``runner/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from quartermaster_engine.memory.persistent_memory import AgentMemory
from quartermaster_engine.types import GraphSpec, Message

if TYPE_CHECKING:
    from quartermaster_engine.events import FlowEvent
    from quartermaster_engine.flow_result import FlowResult
    from quartermaster_engine.stores.records import Activation


class NodeRun(Protocol):
    """The flow an activation runs in, as its `ExecutionContext` sees it."""

    flow_id: UUID
    graph: GraphSpec

    def input_messages(self, act: Activation) -> list[Message]:
        """The activation's input messages (see `runner.node_inputs`)."""
        ...

    def predecessor_outputs(self, act: Activation) -> dict[str, str]:
        """The outputs of the predecessors that delivered to the activation, by name."""
        ...

    def memory_snapshot(self) -> dict[str, Any]:
        """The flow's memory as of now (a copy)."""
        ...

    @property
    def persistence(self) -> Any:
        """Per-agent persistent memory, as the store or engine keeps it."""
        ...

    @property
    def agent_memory(self) -> AgentMemory:
        """`persistence` with every method ``async``."""
        ...

    @property
    def cancel_requested(self) -> bool:
        """The flow is stopping: a blocking executor should return soon."""
        ...

    @property
    def listening(self) -> bool:
        """Someone listens to events (or the store logs them)."""
        ...

    def emit_token(self, act: Activation, token: str) -> None:
        """Stream one token of the activation's output."""
        ...

    def emit_threadsafe(self, event: FlowEvent) -> None:
        """Emit an event of the node's own, from any thread."""
        ...

    def request_stop_threadsafe(self, reason: str) -> None:
        """Stop the flow, from any thread."""
        ...

    async def run_child(self, graph: GraphSpec, input_text: str, flow_id: UUID) -> FlowResult:
        """Run ``graph`` as a child flow of this one."""
        ...

    async def resume_child(
        self, flow_id: UUID, user_input: str, node_id: UUID | str | None
    ) -> FlowResult:
        """Answer a paused child flow of this one and continue it."""
        ...

"""`ExecutionContext`: what a node executor sees of the flow while it runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid5

from quartermaster_engine.context.node_execution import NodeStatus
from quartermaster_engine.events import CustomEvent, FlowEvent, ProgressEvent
from quartermaster_engine.memory.persistent_memory import AgentMemory
from quartermaster_engine.types import GraphNode, GraphSpec, Message

if TYPE_CHECKING:
    from quartermaster_engine.context.node_run import NodeRun
    from quartermaster_engine.flow_result import FlowResult
    from quartermaster_engine.stores.records import Activation


def child_flow_id(flow_id: UUID, node_id: UUID, visit: int, key: str = "") -> UUID:
    """The id `ExecutionContext.child_flow_id` gives the child flow ``key`` of visit
    ``visit`` of node ``node_id`` in flow ``flow_id`` (so an event sink can tell which
    node's run a child flow belongs to)."""
    return uuid5(flow_id, f"{node_id}:{visit}:{key}")


class ExecutionContext:
    """The runtime context passed to a node executor.

    0.1.5's fields: ``flow_id``, ``node_id``, ``graph``, ``current_node``,
    ``messages`` (the node's input messages, built from its ThoughtType and
    MessageType and cut to the context window), ``memory`` (a snapshot of flow
    memory; read it, and write through ``data["memory_updates"]``), ``metadata``
    and the callbacks. Added: ``input_text`` (the output delivered by the
    predecessors, joined with newlines when several deliver), ``predecessor_outputs``
    (name -> output), ``user_input`` (the answer on resume), ``visit``,
    ``attempt`` and ``cancelled`` (true once the flow is stopping; long-running
    blocking executors should check it).

    Contexts built by the engine compute ``messages``, ``memory`` and
    ``metadata`` on first access only, so executors that do not read them do
    not pay for them.
    """

    __slots__ = (
        "_act",
        "_memory",
        "_messages",
        "_metadata",
        "_outputs",
        "_run",
        "attempt",
        "current_node",
        "flow_id",
        "graph",
        "input_text",
        "node_id",
        "on_message",
        "on_status_change",
        "on_token",
        "parent_context",
        "status",
        "user_input",
        "visit",
    )

    def __init__(
        self,
        flow_id: UUID,
        node_id: UUID,
        graph: GraphSpec,
        current_node: GraphNode,
        messages: list[Message] | None = None,
        memory: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        status: NodeStatus = NodeStatus.PENDING,
        parent_context: ExecutionContext | None = None,
        on_message: Callable[[str], None] | None = None,
        on_status_change: Callable[[NodeStatus], None] | None = None,
        on_token: Callable[[str], None] | None = None,
        *,
        input_text: str = "",
        user_input: str | None = None,
        visit: int = 1,
        attempt: int = 1,
    ) -> None:
        self.flow_id = flow_id
        self.node_id = node_id
        self.graph = graph
        self.current_node = current_node
        self._messages: list[Message] | None = [] if messages is None else messages
        self._memory: dict[str, Any] | None = {} if memory is None else memory
        self._metadata: dict[str, Any] | None = {} if metadata is None else metadata
        self._outputs: dict[str, str] | None = {}
        self._run: NodeRun | None = None
        self._act: Activation | None = None
        self.status = status
        self.parent_context = parent_context
        self.on_message = on_message
        self.on_status_change = on_status_change
        self.on_token = on_token
        self.input_text = input_text
        self.user_input = user_input
        self.visit = visit
        self.attempt = attempt

    @classmethod
    def _for_activation(cls, run: NodeRun, act: Activation, input_text: str) -> ExecutionContext:
        """Engine fast path: a context whose heavy fields are built on first access."""
        ctx = cls.__new__(cls)
        ctx._run = run
        ctx._act = act
        ctx.flow_id = run.flow_id
        ctx.node_id = act.node_id
        ctx.graph = run.graph
        ctx.current_node = act.cnode.node
        ctx._messages = None
        ctx._memory = None
        ctx._metadata = None
        ctx._outputs = None
        ctx.status = NodeStatus.RUNNING
        ctx.parent_context = None
        ctx.on_message = None
        ctx.on_status_change = None
        ctx.on_token = None
        ctx.input_text = input_text
        ctx.user_input = act.user_input
        ctx.visit = act.visit
        ctx.attempt = act.attempt
        return ctx

    @property
    def messages(self) -> list[Message]:
        if self._messages is None:
            self._messages = self._run.input_messages(self._act)  # type: ignore[union-attr,arg-type]
        return self._messages

    @messages.setter
    def messages(self, value: list[Message]) -> None:
        self._messages = value

    @property
    def memory(self) -> dict[str, Any]:
        if self._memory is None:
            self._memory = self._run.memory_snapshot()  # type: ignore[union-attr]
        return self._memory

    @memory.setter
    def memory(self, value: dict[str, Any]) -> None:
        self._memory = value

    @property
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            self._metadata = dict(self.current_node.metadata)
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._metadata = value

    @property
    def predecessor_outputs(self) -> dict[str, str]:
        """Output text of each delivering predecessor, by node name (or id if unnamed)."""
        if self._outputs is None:
            self._outputs = self._run.predecessor_outputs(self._act)  # type: ignore[union-attr,arg-type]
        return self._outputs

    @property
    def agent_id(self) -> UUID:
        """The graph's agent: the owner of per-agent persistent memory."""
        return self.graph.agent_id

    @property
    def persistent_memory(self) -> Any:
        """The runner's per-agent `PersistentMemory` (its methods may be ``async def``)."""
        if self._run is None:
            raise RuntimeError("this context was not created by a runner")
        return self._run.persistence

    @property
    def agent_memory(self) -> AgentMemory:
        """The same per-agent memory with every method ``async``, whatever the store:
        ``await context.agent_memory.read(context.agent_id, "key")``."""
        if self._run is None:
            raise RuntimeError("this context was not created by a runner")
        return self._run.agent_memory

    @property
    def idempotency_key(self) -> str:
        """A key for side effects of this activation: the same for one (flow, node,
        visit) on every attempt, after a crash and recover, and when a distributed
        dispatcher delivers the activation twice. Pass it to external APIs that
        deduplicate (payments, tickets, e-mail) so a repeat does nothing twice;
        ``attempt`` tells RETRY attempts apart if you need that too."""
        return str(uuid5(self.flow_id, f"{self.node_id}:{self.visit}"))

    def child_flow_id(self, key: str = "") -> UUID:
        """A stable id for a child flow of this activation: the same on every attempt
        and after resume, so an executor can find the child it started."""
        return child_flow_id(self.flow_id, self.node_id, self.visit, key)

    async def run_child(
        self, graph: GraphSpec, input_text: str, flow_id: UUID | None = None
    ) -> FlowResult:
        """Run ``graph`` as a child flow (same store, executors and event listeners;
        its events carry this flow's id as ``parent_flow_id``) and return its result.
        A paused child returns a paused result; continue it with `resume_child`."""
        if self._run is None:
            raise RuntimeError("this context was not created by a runner")
        child_id = flow_id if flow_id is not None else self.child_flow_id()
        return await self._run.run_child(graph, input_text, child_id)

    async def resume_child(
        self, flow_id: UUID, user_input: str, node_id: UUID | str | None = None
    ) -> FlowResult:
        """Answer a paused child flow and continue it."""
        if self._run is None:
            raise RuntimeError("this context was not created by a runner")
        return await self._run.resume_child(flow_id, user_input, node_id)

    @property
    def cancelled(self) -> bool:
        """True once the flow is stopping: a blocking executor should return soon."""
        run = self._run
        return run is not None and run.cancel_requested

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A node metadata value, falling back to values set on this context."""
        node_meta = self.current_node.metadata
        if key in node_meta:
            return node_meta[key]
        return self.metadata.get(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        """Set a metadata value on this context (not on the graph)."""
        self.metadata[key] = value

    def emit_token(self, token: str) -> None:
        """Stream one token: a TokenGenerated event, then the ``on_token`` callback."""
        run = self._run
        if run is not None:
            run.emit_token(self._act, token)  # type: ignore[arg-type]
        if self.on_token is not None:
            self.on_token(token)

    def stop_flow(self, reason: str = "") -> None:
        """Ask this flow to stop, as `FlowRunner.stop` does; safe from any thread."""
        if self._run is None:
            raise RuntimeError("this context was not created by a runner")
        self._run.request_stop_threadsafe(reason or "stop_flow() called by a node")

    def emit(self, event: FlowEvent) -> None:
        """Send an event of your own (a `FlowEvent` subclass, e.g. a tool call) to the
        flow's listeners, numbered with the engine's events. Safe from worker
        threads; does nothing for a context not made by a runner."""
        run = self._run
        if run is not None and run.listening:
            run.emit_threadsafe(event)

    def emit_progress(self, message: str, percent: float | None = None, **data: Any) -> None:
        """Report progress: a `ProgressEvent` (``percent`` a fraction from 0 to 1, or
        None; ``data`` JSON-ready detail) to the flow's listeners and its event log.
        Safe from worker threads; does nothing for a context not made by a runner."""
        if percent is not None and not 0.0 <= percent <= 1.0:
            raise ValueError(f"emit_progress(): percent must be from 0 to 1, got {percent!r}")
        self.emit(
            ProgressEvent(
                flow_id=self.flow_id,
                node_id=self.node_id,
                node_name=self.current_node.name,
                message=message,
                percent=percent,
                data=data,
            )
        )

    def emit_custom(self, name: str, payload: dict[str, Any] | None = None) -> None:
        """Send an application event: a `CustomEvent` named ``name`` with a JSON-ready
        ``payload`` (default ``{}``), like `emit_progress`."""
        self.emit(
            CustomEvent(
                flow_id=self.flow_id,
                node_id=self.node_id,
                node_name=self.current_node.name,
                name=name,
                payload=dict(payload or {}),
            )
        )

    def emit_message(self, content: str) -> None:
        """Emit a complete message through the ``on_message`` callback."""
        if self.on_message is not None:
            self.on_message(content)

    def update_status(self, status: NodeStatus) -> None:
        """Update this context's status and fire the callback."""
        self.status = status
        if self.on_status_change is not None:
            self.on_status_change(status)

    def __repr__(self) -> str:
        return (
            f"ExecutionContext(flow_id={self.flow_id}, node={self.current_node.describe()}, "
            f"visit={self.visit}, attempt={self.attempt})"
        )

"""The node contract: executors, their results, and registries mapping node types to them."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from uuid import UUID

from quartermaster_graph.enums import NodeType
from quartermaster_graph.models import GraphNode, GraphSpec

if TYPE_CHECKING:
    from quartermaster_engine.context.execution_context import ExecutionContext


@dataclass(slots=True)
class NodeResult:
    """What a node executor returns.

    - ``output_text``: the node's output; successors receive it as their input.
    - ``data``: structured output. ``data["memory_updates"]`` (a dict) is applied
      to flow memory when the node commits.
    - ``picked_node``: for SpawnPickedNode nodes, the branch to take, matched
      against edge label, then target name, then target id.
    - ``wait_for_user``: pause here; ``user_prompt`` / ``user_options`` tell the
      person what is asked. The node runs again on resume with
      ``context.user_input`` set. With ``wake_at`` (a Unix time) too, the node is
      parked until then instead of waiting for an answer (Sleep1). With
      ``wait_for_child`` instead (set by the engine, not by executors: a child
      flow started with ``context.run_child`` runs on a fleet's workers), the
      node is parked until that child flow pauses or ends, then runs again.
    - ``success=False`` with ``error`` is a failure, handled like an exception
      by the node's error strategy.
    """

    success: bool = True
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    picked_node: str | None = None
    output_text: str | None = None
    wait_for_user: bool = False
    user_prompt: str | None = None
    user_options: list[str] | None = None
    wake_at: float | None = None
    wait_for_child: UUID | None = None


@runtime_checkable
class NodeExecutor(Protocol):
    """Runs one node type. ``execute`` may be ``async def`` or plain ``def``.

    A plain ``def`` executor may block: under the async and thread dispatchers
    it runs in a worker thread, never on the event loop.
    """

    def execute(self, context: ExecutionContext) -> NodeResult | Awaitable[NodeResult]:
        """Run the node and describe the outcome."""
        ...


@runtime_checkable
class ValidatesNodes(Protocol):
    """An optional ability of an executor: check a node's settings before the flow
    starts. ``validate_node`` returns the problems found (empty: none); the engine
    refuses to start a graph with any (`NodeConfigError`)."""

    def validate_node(self, node: GraphNode, graph: GraphSpec) -> list[str]: ...


@runtime_checkable
class ReadsMemory(Protocol):
    """An optional ability of an executor: say which flow-memory keys it reads for
    a node (an empty collection: none; None: it cannot tell). A fork that reuses
    unchanged nodes (``fork(..., reuse="unchanged")``) compares only those keys; an
    executor without this ability is taken to read all of the flow memory."""

    def memory_reads(self, node: GraphNode) -> Collection[str] | None: ...


@runtime_checkable
class DeclaresLimitKeys(Protocol):
    """An optional ability of an executor: the limit keys of a node's activations
    (``llm:openai:gpt-4o``), which ``[limits."<key>"]`` tables limit across processes
    (docs/limits.md). Asked once per node of a compiled graph; a node's metadata
    ``limit_keys`` (a list) adds more."""

    def limit_keys(self, node: GraphNode, graph: GraphSpec) -> list[str]: ...


@runtime_checkable
class ListsTypes(Protocol):
    """An optional ability of a registry: list the node types it knows (for "did you
    mean" hints and ``qm plugins``)."""

    def list_types(self) -> list[str]: ...


@runtime_checkable
class NodeRegistry(Protocol):
    """Looks up the executor for a node type string (``"Instruction1"``)."""

    def get_executor(self, node_type: str) -> NodeExecutor | None:
        """The executor for ``node_type``, or None if there is none."""
        ...


class FunctionExecutor:
    """Adapts a plain function ``fn(context) -> NodeResult`` (sync or async) to `NodeExecutor`."""

    __slots__ = ("execute", "fn")

    def __init__(self, fn: Callable[[ExecutionContext], Any]) -> None:
        self.fn = fn
        self.execute = fn

    def __repr__(self) -> str:
        return f"FunctionExecutor({getattr(self.fn, '__qualname__', self.fn)!r})"


def as_executor(obj: Any) -> NodeExecutor:
    """``obj`` if it has an ``execute`` method; a `FunctionExecutor` if it is a function."""
    if callable(getattr(obj, "execute", None)):
        return obj  # type: ignore[no-any-return]
    if callable(obj):
        return FunctionExecutor(obj)
    raise TypeError(
        f"{obj!r} is not a node executor: give an object with an execute(context) method "
        "or a function taking the context"
    )


def is_async_executor(executor: NodeExecutor) -> bool:
    """Whether ``executor.execute`` is a coroutine function."""
    execute = executor.execute
    return inspect.iscoroutinefunction(execute) or inspect.iscoroutinefunction(
        getattr(execute, "__call__", None)  # noqa: B004 - async callable objects
    )


class SimpleNodeRegistry:
    """A dict of node type -> executor."""

    def __init__(self, executors: dict[str, Any] | None = None) -> None:
        self._executors: dict[str, NodeExecutor] = {}
        for node_type, executor in (executors or {}).items():
            self.register(node_type, executor)

    def register(self, node_type: str | NodeType, executor: Any) -> None:
        """Register ``executor`` (an object with ``execute`` or a function) for ``node_type``."""
        key = node_type.value if isinstance(node_type, NodeType) else node_type
        self._executors[key] = as_executor(executor)

    def get_executor(self, node_type: str) -> NodeExecutor | None:
        return self._executors.get(node_type)

    def list_types(self) -> list[str]:
        """Registered node types, in registration order."""
        return list(self._executors)

    def __contains__(self, node_type: object) -> bool:
        key = node_type.value if isinstance(node_type, NodeType) else node_type
        return key in self._executors

"""`RunHost`: what a running flow needs from the engine that drives it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from quartermaster_engine.budgets import BudgetsConfig
from quartermaster_engine.clock import Clock
from quartermaster_engine.dispatchers.base import TaskDispatcher
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.memory.persistent_memory import AgentMemory
from quartermaster_engine.messaging.context_manager import ContextManager
from quartermaster_engine.nodes import NodeExecutor
from quartermaster_engine.runner.compiled import CNode, CompiledGraph
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.types import GraphSpec

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun
    from quartermaster_engine.runner.key_budgets import KeyBudgets
    from quartermaster_engine.runner.key_limits import KeyLimits
    from quartermaster_engine.runner.result import FlowResult


class RunHost(Protocol):
    """Implemented by `Engine`; a `FlowRun` reaches its engine only through this."""

    @property
    def store_adapter(self) -> StoreAdapter:
        """The store, behind one async face."""
        ...

    @property
    def dispatcher(self) -> TaskDispatcher: ...

    @property
    def offloads_blocking(self) -> bool:
        """The dispatcher runs blocking executors off the loop (`dispatchers.base`)."""
        ...

    @property
    def clock(self) -> Clock:
        """What timers read the time from."""
        ...

    @property
    def context_manager(self) -> ContextManager: ...

    @property
    def max_visits(self) -> int | None: ...

    @property
    def budgets(self) -> BudgetsConfig | None:
        """The budgets every flow obeys, or None."""
        ...

    @property
    def key_budgets(self) -> KeyBudgets | None:
        """Budgets per key across flows, or None (no key has a budget)."""
        ...

    @property
    def key_limits(self) -> KeyLimits | None:
        """Concurrency limits per key, or None (no key is limited)."""
        ...

    @property
    def listener_budget(self) -> float | None:
        """Seconds a listener call may take before it is reported and muted."""
        ...

    @property
    def persistence(self) -> Any: ...

    @property
    def agent_memory(self) -> AgentMemory: ...

    def listeners(self) -> list[tuple[str, Callable[[FlowEvent], Any]]]:
        """The runner's own event listeners (``on_event``, sinks)."""
        ...

    def executor_for(self, node_type: str) -> tuple[NodeExecutor, bool] | None:
        """The executor of ``node_type`` and whether it is async, or None."""
        ...

    def missing_executor_message(self, cnode: CNode) -> str:
        """The error of a node whose type has no executor."""
        ...

    def compiled_for(self, spec: GraphSpec) -> CompiledGraph:
        """The compiled form of a stored flow's graph."""
        ...

    def store_name(self) -> str:
        """The store as error messages name it (passwords masked)."""
        ...

    async def run_child(
        self, parent: FlowRun, graph: GraphSpec, input_text: str, flow_id: UUID
    ) -> FlowResult:
        """Run (or continue) a child flow of ``parent``."""
        ...

    async def resume_child(
        self, parent: FlowRun, flow_id: UUID, user_input: str, node_id: UUID | str | None
    ) -> FlowResult:
        """Answer a paused child flow of ``parent`` and continue it."""
        ...

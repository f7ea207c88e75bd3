"""`EngineParts`: what an `Engine` owns (store, dispatcher, executors, listeners,
leases, clock, limits), its lifetime, and the members a running flow uses (the
`RunHost` contract). `Engine` adds the operations on flows by id."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self, cast
from uuid import UUID

from quartermaster_engine._sync import run_sync
from quartermaster_engine.budgets import BudgetsConfig
from quartermaster_engine.clock import SYSTEM_CLOCK, Clock
from quartermaster_engine.dispatchers import base as dispatchers
from quartermaster_engine.dispatchers.base import DispatchProtocol, TaskDispatcher
from quartermaster_engine.dispatchers.legacy import as_dispatcher
from quartermaster_engine.dispatchers.remote import FlowLauncher, RemoteDispatcher, is_remote
from quartermaster_engine.dispatchers.sync_dispatcher import SyncDispatcher
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.memory.persistent_memory import AgentMemory
from quartermaster_engine.messaging.context_manager import ContextManager
from quartermaster_engine.nodes import NodeExecutor, NodeRegistry
from quartermaster_engine.runner.agent_memories import AgentMemories
from quartermaster_engine.runner.compiled import CNode, CompiledGraph
from quartermaster_engine.runner.compiled_graphs import CompiledGraphs
from quartermaster_engine.runner.components import check_parts, release
from quartermaster_engine.runner.executors import Executors
from quartermaster_engine.runner.flows import Flows
from quartermaster_engine.runner.key_budgets import KeyBudgets
from quartermaster_engine.runner.key_limits import KeyLimits, Rule
from quartermaster_engine.runner.lease import DEFAULT_LEASE_SECONDS, LeaseKeeper, new_owner
from quartermaster_engine.runner.listeners import (
    DEFAULT_LISTENER_BUDGET,
    Listener,
)
from quartermaster_engine.runner.running import RunningFlows
from quartermaster_engine.runner.shared_store import check_dispatcher_store
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.memory_store import InMemoryStore
from quartermaster_engine.types import GraphSpec

EventHandler = Callable[[FlowEvent], Any]

#: Runs of one node per flow unless its metadata ``max_visits`` says otherwise.
DEFAULT_MAX_VISITS = 100


class EngineParts:
    """The parts of an `Engine` and what a running flow needs of them; see `Engine`
    for the arguments. Not used on its own."""

    def __init__(
        self,
        store: Any | None = None,
        dispatcher: TaskDispatcher | DispatchProtocol | None = None,
        registry: NodeRegistry | None = None,
        *,
        context_manager: ContextManager | None = None,
        on_event: EventHandler | None = None,
        sinks: Iterable[Any] = (),
        max_visits: int | None = DEFAULT_MAX_VISITS,
        persistence: Any | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        listener_budget: float | None = DEFAULT_LISTENER_BUDGET,
        clock: Clock | None = None,
        budgets: BudgetsConfig | None = None,
        key_limits: Mapping[str, int | Rule] | None = None,
    ) -> None:
        check_parts(store, registry, listener_budget)
        self.node_registry = registry
        self.store = store if store is not None else InMemoryStore()
        self.dispatcher: TaskDispatcher = (
            as_dispatcher(dispatcher) if dispatcher is not None else SyncDispatcher()
        )
        #: The dispatcher runs activations on workers elsewhere (`RemoteDispatcher`), and
        #: blocking executors off the loop (both checked once, not per flow).
        self.remote = is_remote(self.dispatcher)
        #: Who starts stored flows on a fleet's workers: child flows of sub-graph nodes
        #: then run there, not inline (`fleet_children`). A worker sets its own.
        self.fleet: FlowLauncher | None = (
            cast(RemoteDispatcher, self.dispatcher) if self.remote else None
        )
        self.offloads_blocking = dispatchers.offloads_blocking(self.dispatcher)
        self.context_manager = context_manager if context_manager is not None else ContextManager()
        self.on_event = on_event
        self.sinks = list(sinks)
        self.max_visits = max_visits
        #: Each flow's budgets (`quartermaster_engine.budgets`); None or none set: no counting.
        self.budgets = budgets if budgets is not None and (budgets.active or budgets.keys) else None
        #: Budgets per key across flows (``[budgets."<key>"]``), or None.
        self.key_budgets = KeyBudgets.of(self.budgets, self.store)
        #: ``{key or pattern: max_in_flight or Rule}`` across processes (`key_limits`).
        self.key_limits = KeyLimits.of(
            key_limits, self.store, lease_seconds, clock if clock is not None else SYSTEM_CLOCK
        )
        #: How long this engine's hold on a flow it drives lasts unless renewed.
        self.lease_seconds = lease_seconds
        #: Seconds a listener call may run before it is reported (see `runner.listeners`).
        self.listener_budget = listener_budget
        #: What timers read the time from (tests pass a `testing.TestClock`).
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        #: The `EngineConfig` an engine built by `from_config` came from.
        self.config: Any = None
        self._store = StoreAdapter(self.store)
        check_dispatcher_store(self.dispatcher, self.store)
        self._memories = AgentMemories(self.store, persistence)
        self._owner: tuple[int, str] | None = None
        #: Which executor runs each node type (`Executors`).
        self.executors = Executors(registry, self.clock)
        #: Flows stored, listed, shown and deleted by id.
        self.flows = Flows(self._store, self.store_name)
        # Backends this engine created (from_config, `own`) and releases in close().
        self._owned: list[Any] = []
        #: The flows this engine drives right now (and paused ones kept in memory).
        self.running = RunningFlows(self._store.durable)
        self._compiled = CompiledGraphs()

    # -- lifetime ----------------------------------------------------------------

    @property
    def owned(self) -> tuple[Any, ...]:
        return tuple(self._owned)  # what this engine releases when it closes

    def own(self, resource: Any) -> None:
        """Release ``resource`` (its ``close`` or ``shutdown``) when this engine closes."""
        self._owned.append(resource)

    async def aclose(self) -> None:
        """Cancel the flows this engine drives in the background (a durable store
        keeps them for `recover`), then release what it created from configuration
        (store connections, dispatcher threads, sink files)."""
        await self.running.cancel_all()
        owned, self._owned = self._owned, []
        for item in owned:
            await release(item)

    def close(self) -> None:
        """Synchronous `aclose`."""
        if self._owned or self.running.has_tasks:
            run_sync(self.aclose())

    def __enter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- what a running flow needs (the `RunHost` contract) -------------------------

    @property
    def store_adapter(self) -> StoreAdapter:
        """The store behind one async face (plain or async methods)."""
        return self._store

    @property
    def owner(self) -> str:
        """This engine's name as a flow's driver (``host:pid:token``; new after fork)."""
        pid = os.getpid()
        if self._owner is None or self._owner[0] != pid:
            self._owner = (pid, new_owner())
        return self._owner[1]

    @property
    def persistence(self) -> Any:
        """Per-agent persistent memory (see `AgentMemories`)."""
        return self._memories.persistence

    @property
    def agent_memory(self) -> AgentMemory:
        return self._memories.agent_memory

    def listeners(self) -> list[Listener]:
        """The engine's own listeners: ``on_event`` and the sinks."""
        own: list[Listener] = [] if self.on_event is None else [("on_event", self.on_event)]
        for sink in self.sinks:
            own.append((getattr(sink, "name", type(sink).__name__), sink.emit))
        return own

    def executor_for(self, node_type: str) -> tuple[NodeExecutor, bool] | None:
        """The executor of ``node_type`` and whether it is async, or None."""
        return self.executors.executor_for(node_type)

    def missing_executor_message(self, cnode: CNode) -> str:
        """The error of a node whose type has no executor."""
        return self.executors.missing_message(cnode)

    def store_name(self) -> str:
        """The store as messages name it."""
        return self._store.describe()

    def compiled_for(self, spec: GraphSpec) -> CompiledGraph:
        """``spec`` compiled once per distinct graph (`compiled_graphs.MAX_GRAPHS` kept)."""
        return self._compiled.get(spec)

    @property
    def graph_count(self) -> int:  # distinct graphs this engine keeps compiled
        return len(self._compiled)

    def lease_for(self, flow_id: UUID) -> LeaseKeeper:
        """A keeper of ``flow_id``'s lease in this engine's name (not yet acquired)."""
        return LeaseKeeper(self._store, flow_id, self.owner, self.lease_seconds)

    def preflight(self, compiled: CompiledGraph) -> None:
        """Refuse a graph before anything runs (`Executors.preflight`); a remote
        dispatcher's workers may have executors this process lacks."""
        self.executors.preflight(compiled, allow_missing=self.remote)


__all__ = ["DEFAULT_MAX_VISITS", "EngineParts", "EventHandler"]

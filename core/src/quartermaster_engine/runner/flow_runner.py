"""`FlowRunner`: the public face of the engine for one graph, a thin front over an
`Engine` (its own, or one passed in)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any
from uuid import UUID

from quartermaster_engine._sync import run_sync
from quartermaster_engine.clock import Clock
from quartermaster_engine.dispatchers.base import DispatchProtocol, TaskDispatcher
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.memory.persistent_memory import AgentMemory
from quartermaster_engine.messaging.context_manager import ContextManager
from quartermaster_engine.nodes import NodeExecutor, NodeRegistry
from quartermaster_engine.runner.compiled import CNode, CompiledGraph
from quartermaster_engine.runner.engine import DEFAULT_MAX_VISITS, Engine, EventHandler
from quartermaster_engine.runner.event_log import DEFAULT_POLL_SECONDS
from quartermaster_engine.runner.executors import Executors, NodeConfigError, UnknownNodeTypeError
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.lease import DEFAULT_LEASE_SECONDS, LeaseKeeper
from quartermaster_engine.runner.listeners import DEFAULT_LISTENER_BUDGET, Listener
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.types import GraphSpec


class FlowRunner:
    """Runs flows of one graph.

    ``node_registry`` maps node types to executors; the engine's Start1 and
    End1 executors are used for those types when the registry has none, and a
    Merge1 without LLM settings is always the engine's join (see `control_nodes`). Without
    a registry, every installed node executor plugin is used.
    ``store`` keeps flow state (default: a new `InMemoryStore`), ``dispatcher``
    decides how activations run (default: `SyncDispatcher`; one implementing only
    0.1.5's ``dispatch``/``wait_all``/``shutdown`` is wrapped in a `LegacyDispatcher`,
    which ``self.dispatcher`` then holds), ``context_manager``
    cuts input messages to the context window, ``on_event`` receives every
    event, and each of ``sinks`` (objects with ``emit(event)``) too. Listeners
    run inline, in order, on the flow's loop thread; a call running longer than
    ``listener_budget`` seconds is reported by a warning and that listener is
    not called again for the flow (see `runner.listeners`).

    These arguments build the runner's own `Engine`. ``engine=`` shares one instead
    (``FlowRunner(graph, engine=engine)``): the store, dispatcher and executors are
    then the engine's, and ``on_event`` receives the events of the flows this
    runner starts, resumes and recovers.

    Every method has a synchronous form (``run``) that works from scripts and
    from inside a running event loop, and an async one (``arun``). Arguments are
    checked at the call: a flow id is a `UUID` or its string form, ``input_message``
    and ``user_input`` are str; anything else raises `TypeError` or `ValueError`
    naming the argument.
    """

    def __init__(
        self,
        graph: GraphSpec,
        node_registry: NodeRegistry | None = None,
        store: Any | None = None,
        dispatcher: TaskDispatcher | DispatchProtocol | None = None,
        context_manager: ContextManager | None = None,
        on_event: EventHandler | None = None,
        *,
        sinks: Iterable[Any] = (),
        max_visits: int | None = DEFAULT_MAX_VISITS,
        persistence: Any | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        listener_budget: float | None = DEFAULT_LISTENER_BUDGET,
        engine: Engine | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._on_event: EventHandler | None = None
        if engine is None:
            engine = Engine(
                store,
                dispatcher,
                node_registry,
                context_manager=context_manager,
                on_event=on_event,
                sinks=sinks,
                max_visits=max_visits,
                persistence=persistence,
                lease_seconds=lease_seconds,
                listener_budget=listener_budget,
                clock=clock,
            )
            self._own_engine = True
        else:
            given = {
                "node_registry": node_registry,
                "store": store,
                "dispatcher": dispatcher,
                "context_manager": context_manager,
                "persistence": persistence,
                "sinks": list(sinks) or None,
                "clock": clock,
            }
            clash = [name for name, value in given.items() if value is not None]
            if clash:
                raise TypeError(
                    f"FlowRunner(engine=...) uses the engine's parts; do not also pass "
                    f"{', '.join(clash)}"
                )
            self._own_engine = False
            self._on_event = on_event
        self.engine = engine
        self.graph = graph
        self._compiled = engine.compiled_for(graph)

    @classmethod
    def from_config(cls, graph: GraphSpec, config: Any = None, **overrides: Any) -> FlowRunner:
        """A runner over an engine assembled from configuration and the installed
        plugins (see `Engine.from_config` for ``config`` and ``overrides``). The
        runner's engine owns the backends it created: `close` releases them."""
        runner = cls(graph, engine=Engine.from_config(config, **overrides))
        runner._own_engine = True
        return runner

    # -- the engine's parts, as 0.1.5 and our own users read them ---------------------

    @property
    def store(self) -> Any:
        return self.engine.store

    @property
    def dispatcher(self) -> TaskDispatcher:
        return self.engine.dispatcher

    @property
    def node_registry(self) -> NodeRegistry | None:
        return self.engine.node_registry

    @property
    def context_manager(self) -> ContextManager:
        return self.engine.context_manager

    @property
    def executors(self) -> Executors:
        """Which executor runs each node type (`Executors`)."""
        return self.engine.executors

    @property
    def sinks(self) -> list[Any]:
        return self.engine.sinks

    @property
    def config(self) -> Any:
        """The `EngineConfig` a runner built by `from_config` came from."""
        return self.engine.config

    @property
    def remote(self) -> bool:
        """The dispatcher runs activations on workers elsewhere (`RemoteDispatcher`)."""
        return self.engine.remote

    @property
    def max_visits(self) -> int | None:
        return self.engine.max_visits

    @property
    def lease_seconds(self) -> float:
        return self.engine.lease_seconds

    @property
    def listener_budget(self) -> float | None:
        return self.engine.listener_budget

    @property
    def store_adapter(self) -> StoreAdapter:
        return self.engine.store_adapter

    @property
    def owner(self) -> str:
        return self.engine.owner

    @property
    def persistence(self) -> Any:
        return self.engine.persistence

    @property
    def agent_memory(self) -> AgentMemory:
        return self.engine.agent_memory

    @property
    def on_event(self) -> EventHandler | None:
        return self.engine.on_event if self._own_engine else self._on_event

    @on_event.setter
    def on_event(self, handler: EventHandler | None) -> None:
        if self._own_engine:
            self.engine.on_event = handler
        else:
            self._on_event = handler

    @property
    def active_flows(self) -> list[UUID]:
        """Flows running in this runner's engine right now."""
        return self.engine.active_flows

    def listeners(self) -> list[Listener]:
        """Every listener of this runner's flows: the engine's, then ``on_event``."""
        return [*self.engine.listeners(), *self._extra()]

    def _extra(self) -> list[Listener]:
        """Listeners this runner adds to the engine's (a shared engine's ``on_event``)."""
        return [("on_event", self._on_event)] if self._on_event is not None else []

    def executor_for(self, node_type: str) -> tuple[NodeExecutor, bool] | None:
        return self.engine.executor_for(node_type)

    def missing_executor_message(self, cnode: CNode) -> str:
        return self.engine.missing_executor_message(cnode)

    def store_name(self) -> str:
        return self.engine.store_name()

    def lease_for(self, flow_id: UUID) -> LeaseKeeper:
        return self.engine.lease_for(flow_id)

    def compiled_for(self, spec: GraphSpec) -> CompiledGraph:
        return self.engine.compiled_for(spec)

    def preflight(self, compiled: CompiledGraph | None = None) -> None:
        """Check the graph before anything runs (see `Engine.preflight`)."""
        self.engine.preflight(compiled if compiled is not None else self._compiled)

    def new_run(
        self,
        input_message: str,
        flow_id: UUID | str | None = None,
        listeners: Iterable[Listener] = (),
    ) -> FlowRun:
        """A run of a new flow of this graph, checked and pre-flighted but not started."""
        return self.engine.new_run(self._compiled, input_message, flow_id, listeners)

    # -- lifetime --------------------------------------------------------------------

    async def aclose(self) -> None:
        """Release what this runner's own engine created from configuration (store
        connections, dispatcher threads, sink files). Objects passed in, and a
        shared engine, are left to their owner."""
        if self._own_engine:
            await self.engine.aclose()

    def close(self) -> None:
        """Synchronous `aclose`."""
        if self._own_engine:
            self.engine.close()

    def __enter__(self) -> FlowRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> FlowRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- running ---------------------------------------------------------------------

    async def arun(
        self,
        input_message: str,
        flow_id: UUID | str | None = None,
        *,
        parent_flow_id: UUID | None = None,
        on_event: EventHandler | None = None,
    ) -> FlowResult:
        """Run a new flow to its end or first pause; return its result."""
        return await self.engine.run(
            self._compiled.spec,
            input_message,
            flow_id,
            on_event=on_event,
            listeners=self._extra(),
            parent_flow_id=parent_flow_id,
        )

    def run(self, input_message: str, flow_id: UUID | str | None = None) -> FlowResult:
        """Run a new flow synchronously (from scripts, or inside a running event loop)."""
        return run_sync(self.arun(input_message, flow_id))

    async def run_async(
        self, input_message: str, flow_id: UUID | str | None = None
    ) -> AsyncIterator[FlowEvent]:
        """Run a new flow, yielding its events as they happen.

        Breaking out of the iteration stops the flow.
        """
        async for event in self.engine.stream(self.graph, input_message, flow_id):
            yield event

    async def asubmit(self, input_message: str, flow_id: UUID | None = None) -> UUID:
        """Store a new flow with its start node queued, run nothing, and return its
        id (see `Engine.submit`)."""
        return await self.engine.submit(self.graph, input_message, flow_id)

    def submit(self, input_message: str, flow_id: UUID | None = None) -> UUID:
        """Synchronous `asubmit`."""
        return run_sync(self.asubmit(input_message, flow_id))

    # -- stored flows (of any graph), by id -------------------------------------------

    async def aresume(
        self, flow_id: UUID | str, user_input: str, node_id: UUID | str | None = None
    ) -> FlowResult:
        """Give ``user_input`` to a waiting node of a paused flow and continue it.

        ``node_id`` (an id or a node name) picks the node when several wait;
        by default the one that started waiting first. The flow's graph is
        pre-flighted as by `run` before the answer is recorded.
        """
        return await self.engine.resume(flow_id, user_input, node_id, listeners=self._extra())

    def resume(
        self, flow_id: UUID | str, user_input: str, node_id: UUID | str | None = None
    ) -> FlowResult:
        """Synchronous `aresume`."""
        return run_sync(self.aresume(flow_id, user_input, node_id))

    async def arecover(self, flow_id: UUID | str, *, wait: float = 0.0) -> FlowResult:
        """Continue a flow whose run was interrupted (see `Engine.recover`)."""
        return await self.engine.recover(flow_id, wait=wait, listeners=self._extra())

    def recover(self, flow_id: UUID | str, *, wait: float = 0.0) -> FlowResult:
        """Synchronous `arecover`."""
        return run_sync(self.arecover(flow_id, wait=wait))

    def stop(self, flow_id: UUID | str) -> None:
        """Stop a flow: nothing new starts, running executors are cancelled (async)
        or see ``context.cancelled`` (blocking); the flow ends as stopped.

        Works from any thread. A paused flow in the store is marked stopped.
        """
        if not self.engine.request_stop(flow_id):
            run_sync(self.astop(flow_id))

    async def astop(self, flow_id: UUID | str) -> None:
        """Async `stop`."""
        await self.engine.stop(flow_id, listeners=self._extra())

    async def events(
        self,
        flow_id: UUID,
        *,
        after: int = 0,
        follow: bool = False,
        poll: float = DEFAULT_POLL_SECONDS,
    ) -> AsyncIterator[FlowEvent]:
        """The flow's events from the store's durable log (see `Engine.events`)."""
        async for event in self.engine.events(flow_id, after=after, follow=follow, poll=poll):
            yield event

    async def aget_result(self, flow_id: UUID | str) -> FlowResult:
        """The current result of a stored flow, without running anything."""
        return await self.engine.result(flow_id)

    def get_result(self, flow_id: UUID | str) -> FlowResult:
        """Synchronous `aget_result`."""
        return run_sync(self.aget_result(flow_id))


__all__ = ["DEFAULT_MAX_VISITS", "FlowRunner", "NodeConfigError", "UnknownNodeTypeError"]

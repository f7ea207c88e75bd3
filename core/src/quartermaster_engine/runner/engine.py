"""`Engine`: one per process; owns the store, the dispatcher, executor resolution,
the listeners and the leases, and acts on any flow of any graph by its id.

Every front sits on an Engine: `FlowRunner`, qm-server, ``qm worker`` and its
`FlowStepper`, the CLI. A flow read back from the store brings its own graph.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Unpack
from uuid import UUID

from quartermaster_engine import history as past
from quartermaster_engine._sync import run_sync
from quartermaster_engine.clock import SYSTEM_CLOCK, Clock
from quartermaster_engine.dispatchers import base as dispatchers
from quartermaster_engine.dispatchers.base import DispatchProtocol, TaskDispatcher
from quartermaster_engine.dispatchers.legacy import as_dispatcher
from quartermaster_engine.dispatchers.remote import is_remote
from quartermaster_engine.dispatchers.sync_dispatcher import SyncDispatcher
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.history import Checkpoint
from quartermaster_engine.memory.persistent_memory import AgentMemory
from quartermaster_engine.messaging.context_manager import ContextManager
from quartermaster_engine.nodes import NodeExecutor, NodeRegistry
from quartermaster_engine.runner import child_flows, new_flows, remote_run, stored_flows, timers
from quartermaster_engine.runner.agent_memories import AgentMemories
from quartermaster_engine.runner.arguments import flow_id_arg
from quartermaster_engine.runner.compiled import CNode, CompiledGraph
from quartermaster_engine.runner.compiled_graphs import CompiledGraphs
from quartermaster_engine.runner.components import check_parts, release
from quartermaster_engine.runner.event_log import DEFAULT_POLL_SECONDS, read_log
from quartermaster_engine.runner.executors import Executors
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.flows import Flows
from quartermaster_engine.runner.lease import DEFAULT_LEASE_SECONDS, LeaseKeeper, new_owner
from quartermaster_engine.runner.listeners import DEFAULT_LISTENER_BUDGET, Listener, with_handler
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.runner.running import RunningFlows
from quartermaster_engine.runner.schedules import EngineSchedules
from quartermaster_engine.runner.shared_store import check_dispatcher_store
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.memory_store import InMemoryStore
from quartermaster_engine.types import GraphSpec

EventHandler = Callable[[FlowEvent], Any]

#: Runs of one node in one flow unless its metadata ``max_visits`` says otherwise.
DEFAULT_MAX_VISITS = 100


class Engine:
    """The engine of one process (see the module).

    ``store`` keeps flow state (default: a new `InMemoryStore`); ``dispatcher``
    decides how activations run (default: `SyncDispatcher`; one implementing only
    0.1.5's ``dispatch``/``wait_all``/``shutdown`` is wrapped in a `LegacyDispatcher`);
    ``registry`` maps node types to executors (None: every installed node executor
    plugin); ``context_manager`` cuts input messages to the context window;
    ``on_event`` and each of ``sinks`` (objects with ``emit(event)``) receive every
    event of every flow this engine drives. ``listener_budget``: see `runner.listeners`.

    Build one with `from_config`; use it with ``async with`` or call `close`: it
    releases the backends it created, never objects passed in. Methods act by flow
    id and are ``async``; `FlowRunner` adds the synchronous forms for one graph.
    """

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
        self.offloads_blocking = dispatchers.offloads_blocking(self.dispatcher)
        self.context_manager = context_manager if context_manager is not None else ContextManager()
        self.on_event = on_event
        self.sinks = list(sinks)
        self.max_visits = max_visits
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
        #: Graphs started on a cron expression by the clock loop (`keep_clock`).
        self.schedules = EngineSchedules(self)
        # Backends this engine created (from_config, `own`) and releases in close().
        self._owned: list[Any] = []
        #: The flows this engine drives right now (and paused ones kept in memory).
        self.running = RunningFlows(self._store.durable)
        self._compiled = CompiledGraphs()

    @classmethod
    def from_config(cls, config: Any = None, **overrides: Any) -> Engine:
        """An engine assembled from configuration (a dict, a TOML path, an
        `EngineConfig`, or None: the file and ``QM_*`` environment) and the installed
        plugins; ``overrides`` as `assembly.assemble` takes them. The engine owns the
        backends it created: `close` releases them."""
        from quartermaster_engine.assembly import assemble

        return assemble(config, overrides).build(cls)

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

    def __enter__(self) -> Engine:
        return self

    async def __aenter__(self) -> Engine:
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
    def graph_count(self) -> int:
        """How many distinct graphs this engine keeps compiled."""
        return len(self._compiled)

    async def run_child(
        self, parent: FlowRun, graph: GraphSpec, input_text: str, flow_id: UUID
    ) -> FlowResult:
        """Run (or continue) a child flow of ``parent`` (see `child_flows`)."""
        return await child_flows.run_child(self, parent, graph, input_text, flow_id)

    async def resume_child(
        self, parent: FlowRun, flow_id: UUID, user_input: str, node_id: UUID | str | None
    ) -> FlowResult:
        """Answer a paused child flow of ``parent`` and continue it."""
        return await child_flows.resume_child(self, parent, flow_id, user_input, node_id)

    def lease_for(self, flow_id: UUID) -> LeaseKeeper:
        """A keeper of ``flow_id``'s lease in this engine's name (not yet acquired)."""
        return LeaseKeeper(self._store, flow_id, self.owner, self.lease_seconds)

    def preflight(self, compiled: CompiledGraph) -> None:
        """Refuse a graph before anything runs (`Executors.preflight`); a remote
        dispatcher's workers may have executors this process lacks."""
        self.executors.preflight(compiled, allow_missing=self.remote)

    # -- new flows -------------------------------------------------------------------

    def new_run(
        self,
        graph: GraphSpec | CompiledGraph,
        input_message: str,
        flow_id: UUID | str | None = None,
        listeners: Iterable[Listener] = (),
        *,
        parent_flow_id: UUID | None = None,
    ) -> FlowRun:
        """A run of a new flow of ``graph``, checked and pre-flighted but not started."""
        return new_flows.new_run(self, graph, input_message, flow_id, listeners, parent_flow_id)

    async def run(
        self,
        graph: GraphSpec,
        input_message: str,
        flow_id: UUID | str | None = None,
        *,
        on_event: EventHandler | None = None,
        listeners: Iterable[Listener] = (),
        parent_flow_id: UUID | None = None,
    ) -> FlowResult:
        """Run a new flow of ``graph`` to its end or first pause; return its result.
        ``on_event`` (and ``listeners``) receive this flow's events besides the engine's."""
        extra = with_handler(on_event, listeners)
        return await new_flows.run(self, graph, input_message, flow_id, extra, parent_flow_id)

    async def start(
        self,
        graph: GraphSpec,
        input_message: str,
        flow_id: UUID | str | None = None,
        *,
        on_event: EventHandler | None = None,
        listeners: Iterable[Listener] = (),
    ) -> UUID:
        """Start a new flow of ``graph``; return its id once it is stored (see
        `new_flows.start`). Errors found before anything runs raise here."""
        extra = with_handler(on_event, listeners)
        return await new_flows.start(self, graph, input_message, flow_id, extra)

    async def submit(
        self, graph: GraphSpec, input_message: str, flow_id: UUID | str | None = None
    ) -> UUID:
        """Store a new flow with its start node queued, run nothing, return its id
        (see `new_flows.submit`). Needs a durable store."""
        return await new_flows.submit(self, graph, input_message, flow_id)

    def stream(
        self, graph: GraphSpec, input_message: str, flow_id: UUID | str | None = None
    ) -> AsyncIterator[FlowEvent]:
        """Run a new flow, yielding its events as they happen (breaking out stops it)."""
        return new_flows.stream(self, graph, input_message, flow_id)

    # -- driving ---------------------------------------------------------------------

    async def drive(self, run: FlowRun, on_end: Callable[[], None] | None = None) -> FlowResult:
        """Drive ``run`` in this process until it pauses or ends."""
        return await self.running.drive(run, on_end)

    async def proceed(self, run: FlowRun) -> FlowResult:
        """Drive the run here, or hand it to remote workers and follow it to a pause or end."""
        if not self.remote:
            return await self.drive(run)
        after = await remote_run.hand_off(self, run)
        return await remote_run.follow(self, run.flow_id, after, run.started, run.extra_listeners)

    async def wake_due(self, limit: int = timers.WAKE_LIMIT) -> list[UUID]:
        """Wake flows parked on a timer that is due (docs/time.md); the ids woken here."""
        return await timers.wake_due(self, limit)

    async def keep_clock(self, every: float = timers.CLOCK_EVERY) -> None:
        """`wake_due` and `schedules.fire_due` every ``every`` seconds until cancelled."""
        await timers.keep_clock(self, every)

    @property
    def active_flows(self) -> list[UUID]:
        """Flows running in this engine right now."""
        return self.running.active_ids()

    # -- stored flows, by id ---------------------------------------------------------

    async def resume(
        self,
        flow_id: UUID | str,
        user_input: str,
        node_id: UUID | str | None = None,
        *,
        on_event: EventHandler | None = None,
        listeners: Iterable[Listener] = (),
    ) -> FlowResult:
        """Answer a waiting node of a paused flow and continue it (`stored_flows.resume`)."""
        extra = with_handler(on_event, listeners)
        return await stored_flows.resume(self, flow_id, user_input, node_id, extra)

    async def recover(
        self,
        flow_id: UUID | str,
        *,
        wait: float = 0.0,
        on_event: EventHandler | None = None,
        listeners: Iterable[Listener] = (),
    ) -> FlowResult:
        """Continue a flow whose run was interrupted (see `stored_flows.recover`)."""
        return await stored_flows.recover(self, flow_id, wait, with_handler(on_event, listeners))

    def request_stop(self, flow_id: UUID | str) -> bool:
        """Stop a flow this engine drives, from any thread; False if it drives none."""
        return stored_flows.request_stop(self, flow_id)

    async def stop(self, flow_id: UUID | str, *, listeners: Iterable[Listener] = ()) -> None:
        """Stop a flow: nothing new starts, running executors are cancelled (async)
        or see ``context.cancelled`` (blocking); the flow ends as stopped. A flow
        paused or driven elsewhere is marked stopped in the store."""
        await stored_flows.stop(self, flow_id, list(listeners))

    async def result(self, flow_id: UUID | str, *, wait: bool = False) -> FlowResult:
        """A flow's result, running nothing (``wait``: once it settles; `stored_flows.result`)."""
        return await stored_flows.result(self, flow_id, wait=wait)

    async def history(self, flow_id: UUID | str) -> list[Checkpoint]:
        """One checkpoint per commit, oldest first (see `quartermaster_engine.history`)."""
        return await past.read_history(self._store, flow_id_arg(flow_id), self.store_name())

    async def update(self, flow_id: UUID | str, **edit: Unpack[past.Edit]) -> int:
        """Edit a paused, failed or stopped flow (see `history.edits.update`)."""
        return await past.edits.update(self, flow_id_arg(flow_id), **edit)

    async def retry(self, flow_id: UUID | str, *, listeners: Iterable[Listener] = ()) -> FlowResult:
        """Continue a failed flow from its failed activation (see `history.edits.retry`)."""
        return await past.edits.retry(self, flow_id_arg(flow_id), listeners)

    async def fork(self, flow_id: UUID | str, **edits: Unpack[past.ForkEdits]) -> UUID:
        """A new flow from a checkpoint, with edits (see `history.fork.fork`)."""
        return await past.fork.fork(self, flow_id_arg(flow_id), **edits)

    async def lineage(self, flow_id: UUID | str) -> tuple[UUID, int] | None:
        """The (flow, checkpoint) a fork began from, or None (see `history.fork`)."""
        return await past.fork.lineage(self, flow_id_arg(flow_id))

    async def events(
        self,
        flow_id: UUID | str,
        *,
        after: int = 0,
        follow: bool = False,
        poll: float = DEFAULT_POLL_SECONDS,
    ) -> AsyncIterator[FlowEvent]:
        """The flow's events from the store's durable log (every event but tokens),
        numbered above ``after``; from any process. With ``follow`` it keeps
        yielding new events until the flow has ended (see `event_log.read_log`)."""
        fid = flow_id_arg(flow_id)
        async for event in read_log(self._store, fid, after=after, follow=follow, poll=poll):
            yield event


__all__ = ["DEFAULT_MAX_VISITS", "Engine", "EventHandler"]

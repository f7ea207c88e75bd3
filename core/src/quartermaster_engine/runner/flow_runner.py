"""`FlowRunner`: the public face of the engine."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from uuid import UUID, uuid4

from quartermaster_engine._sync import run_sync
from quartermaster_engine.dispatchers.base import DispatchProtocol, TaskDispatcher
from quartermaster_engine.dispatchers.legacy import as_dispatcher
from quartermaster_engine.dispatchers.remote import is_remote
from quartermaster_engine.dispatchers.sync_dispatcher import SyncDispatcher
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.memory.persistent_memory import AgentMemory, InMemoryPersistence
from quartermaster_engine.messaging.context_manager import ContextManager
from quartermaster_engine.nodes import NodeExecutor, NodeRegistry
from quartermaster_engine.runner import finish, remote_run
from quartermaster_engine.runner.arguments import (
    optional_flow_id_arg,
    text_arg,
)
from quartermaster_engine.runner.child_flows import ChildFlows
from quartermaster_engine.runner.compiled import CNode, CompiledGraph
from quartermaster_engine.runner.errors import FlowStateError, StoreUnavailableError
from quartermaster_engine.runner.executors import Executors, NodeConfigError, UnknownNodeTypeError
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.lease import DEFAULT_LEASE_SECONDS, LeaseKeeper, new_owner
from quartermaster_engine.runner.listeners import DEFAULT_LISTENER_BUDGET
from quartermaster_engine.runner.result import FlowResult
from quartermaster_engine.runner.shared_store import check_dispatcher_store, store_name
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import FlowExistsError
from quartermaster_engine.stores.memory_store import InMemoryStore
from quartermaster_engine.types import GraphSpec

EventHandler = Callable[[FlowEvent], Any]

#: How many times one node may run in one flow unless the node says otherwise
#: (metadata ``max_visits``).
DEFAULT_MAX_VISITS = 100

_END = object()

logger = logging.getLogger("quartermaster_engine.runner")


class FlowRunner(ChildFlows):
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
    ) -> None:
        _check_component("store", store, _STORE_METHODS)
        if node_registry is not None and not callable(getattr(node_registry, "get_executor", None)):
            raise TypeError(
                f"node_registry must have a get_executor(node_type) method; "
                f"got {type(node_registry).__name__}"
            )
        self.graph = graph
        self._compiled = CompiledGraph(graph)
        self.node_registry = node_registry
        self.store = store if store is not None else InMemoryStore()
        self.dispatcher: TaskDispatcher = (
            as_dispatcher(dispatcher) if dispatcher is not None else SyncDispatcher()
        )
        #: The dispatcher runs activations on workers elsewhere (`RemoteDispatcher`).
        self.remote = is_remote(self.dispatcher)
        self.context_manager = context_manager if context_manager is not None else ContextManager()
        self.on_event = on_event
        self.sinks = list(sinks)
        self.max_visits = max_visits
        #: How long this runner's hold on a flow it drives lasts unless renewed.
        self.lease_seconds = lease_seconds
        self._owner: tuple[int, str] | None = None
        if listener_budget is not None and not listener_budget > 0:
            raise ValueError(
                f"listener_budget must be a number of seconds > 0 or None, got {listener_budget!r}"
            )
        #: Seconds a listener call may run before it is reported (see `runner.listeners`).
        self.listener_budget = listener_budget
        #: The `EngineConfig` a runner built by `from_config` came from.
        self.config: Any = None
        self._store = StoreAdapter(self.store)
        check_dispatcher_store(self.dispatcher, self.store)
        self._persistence = persistence
        self._agent_memory: AgentMemory | None = None
        #: Which executor runs each node type (`Executors`).
        self.executors = Executors(node_registry)
        # Backends this runner created (from_config) and must release in close().
        self._owned: list[Any] = []
        self._active: dict[UUID, FlowRun] = {}
        # Paused flows of stores without the durable contract live here until resumed.
        self._parked: dict[UUID, FlowRun] = {}
        # Compiled graphs other than our own (sub-graphs, restored flows), by object id.
        self._compiled_cache: dict[int, tuple[GraphSpec, CompiledGraph]] = {
            id(graph): (graph, self._compiled)
        }

    @property
    def store_adapter(self) -> StoreAdapter:
        """The store behind one async face (plain or async methods)."""
        return self._store

    @property
    def owner(self) -> str:
        """How this runner names itself as a flow's driver (``host:pid:token``);
        a forked process gets a name of its own."""
        pid = os.getpid()
        if self._owner is None or self._owner[0] != pid:
            self._owner = (pid, new_owner())
        return self._owner[1]

    @property
    def persistence(self) -> Any:
        """Per-agent persistent memory: the ``persistence`` given, else the store's own
        (``store.persistent_memory()``), else an in-memory one owned by this runner."""
        if self._persistence is None:
            factory = getattr(self.store, "persistent_memory", None)
            self._persistence = factory() if callable(factory) else InMemoryPersistence()
        return self._persistence

    @property
    def agent_memory(self) -> AgentMemory:
        """`persistence` with every method ``async`` (see `AgentMemory`)."""
        if self._agent_memory is None or self._agent_memory.target is not self.persistence:
            self._agent_memory = AgentMemory(self.persistence)
        return self._agent_memory

    # -- executors -------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        graph: GraphSpec,
        config: Any = None,
        **overrides: Any,
    ) -> FlowRunner:
        """A runner assembled from configuration and the installed plugins.

        ``config`` is a dict, a path to a TOML file, an `EngineConfig`, or None
        (then ``$QM_CONFIG``, ``qm.toml`` or ``pyproject.toml`` and the ``QM_*``
        environment are read; see `quartermaster_engine.config`). ``overrides``
        holding config sections (``store``, ``dispatcher``, ``sinks``, ``limits``,
        ``nodes`` as dicts) take precedence over everything; ``store`` or
        ``dispatcher`` may also be ready objects, and ``node_registry``,
        ``on_event``, ``context_manager`` and ``persistence`` go to the runner.
        An explicit ``node_registry`` wins over the installed node executors.

        The runner owns the backends it created: `close` releases them.
        """
        from quartermaster_engine import assembly
        from quartermaster_engine.config import EngineConfig
        from quartermaster_engine.plugins.loader import load_plugins

        runner_kwargs = {
            k: overrides.pop(k)
            for k in ("node_registry", "on_event", "context_manager", "persistence")
            if k in overrides
        }
        objects = {
            k: overrides.pop(k)
            for k in ("store", "dispatcher")
            if k in overrides and not isinstance(overrides[k], dict | str)
        }
        for key in ("store", "dispatcher"):
            if isinstance(overrides.get(key), str):
                overrides[key] = {"name": overrides[key]}
        engine_config = EngineConfig.load(config, overrides=overrides or None)
        plugins = load_plugins()
        owned: list[Any] = []
        store = objects.get("store")
        if store is None:
            store = assembly.build_store(engine_config, plugins)
            owned.append(store)
        dispatcher = objects.get("dispatcher")
        if dispatcher is None:
            dispatcher = assembly.build_dispatcher(engine_config, plugins)
            owned.append(dispatcher)
        sinks = assembly.build_sinks(engine_config, plugins)
        owned.extend(sinks)
        installed = assembly.node_registry(engine_config, plugins)
        explicit = runner_kwargs.pop("node_registry", None)
        registry = installed if explicit is None else assembly.ChainedRegistry(explicit, installed)
        runner = cls(
            graph,
            registry,
            store=store,
            dispatcher=dispatcher,
            sinks=sinks,
            max_visits=engine_config.limits.max_visits,
            **runner_kwargs,
        )
        runner.executors.installed = installed
        runner._owned = owned
        runner.config = engine_config
        return runner

    async def aclose(self) -> None:
        """Release what this runner created from configuration (store connections,
        dispatcher threads, sink files). Objects passed in are left to their owner."""
        owned, self._owned = self._owned, []
        for item in owned:
            for method in ("close", "shutdown"):
                fn = getattr(item, method, None)
                if callable(fn):
                    result = fn()
                    if inspect.isawaitable(result):
                        await result
                    break

    def close(self) -> None:
        """Synchronous `aclose`."""
        if self._owned:
            run_sync(self.aclose())

    def __enter__(self) -> FlowRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> FlowRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def executor_for(self, node_type: str) -> tuple[NodeExecutor, bool] | None:
        """The executor of ``node_type`` and whether it is async, or None."""
        return self.executors.executor_for(node_type)

    def missing_executor_message(self, cnode: CNode) -> str:
        """The error of a node whose type has no executor."""
        return self.executors.missing_message(cnode)

    def _compile(self, spec: GraphSpec) -> CompiledGraph:
        hit = self._compiled_cache.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        compiled = CompiledGraph(spec)
        self._compiled_cache[id(spec)] = (spec, compiled)
        return compiled

    def preflight(self, compiled: CompiledGraph | None = None) -> None:
        """Check, before anything runs, that every node type has an executor and every
        executor that checks its node's settings finds no problem (see
        `Executors.preflight`); `run`, `resume` and `recover` call it. Raises
        `UnknownNodeTypeError` or `NodeConfigError` listing every problem."""
        self.executors.preflight(
            compiled if compiled is not None else self._compiled,
            # A remote dispatcher's workers may have executors this process lacks.
            allow_missing=self.remote,
        )

    def listeners(self) -> list[tuple[str, EventHandler]]:
        """This runner's own listeners: ``on_event`` and the sinks."""
        listeners: list[tuple[str, EventHandler]] = []
        if self.on_event is not None:
            listeners.append(("on_event", self.on_event))
        for sink in self.sinks:
            listeners.append((getattr(sink, "name", type(sink).__name__), sink.emit))
        return listeners

    def store_name(self) -> str:
        """The store as messages name it."""
        return store_name(self.store)

    # -- running ----------------------------------------------------------------

    def new_run(
        self,
        input_message: str,
        flow_id: UUID | str | None = None,
        listeners: Iterable[tuple[str, EventHandler]] = (),
    ) -> FlowRun:
        """A run of a new flow, checked and pre-flighted but not started."""
        return self._new_run(input_message, flow_id, None, listeners)

    def _new_run(
        self,
        input_message: str,
        flow_id: UUID | str | None,
        parent_flow_id: UUID | None,
        listeners: Iterable[tuple[str, EventHandler]] = (),
        compiled: CompiledGraph | None = None,
    ) -> FlowRun:
        compiled = compiled if compiled is not None else self._compiled
        text_arg(input_message, "input_message")
        checked_id = optional_flow_id_arg(flow_id)
        self.preflight(compiled)
        fid = checked_id if checked_id is not None else uuid4()
        if fid in self._active:
            raise FlowStateError(f"flow {fid} is already running in this runner")
        return FlowRun(
            self,
            compiled,
            fid,
            input_message,
            self.lease_for(fid),
            parent_flow_id=parent_flow_id,
            listeners=listeners,
        )

    def lease_for(self, flow_id: UUID) -> LeaseKeeper:
        """A keeper of ``flow_id``'s lease in this runner's name (not yet acquired)."""
        return LeaseKeeper(self._store, flow_id, self.owner, self.lease_seconds)

    def compiled_for(self, spec: GraphSpec) -> CompiledGraph:
        """The compiled form of a stored flow's graph (this runner's own if equal).

        Looked up by the object first: stores hand out one cached graph object per
        distinct graph, so a flow read again costs no comparison of whole graphs."""
        hit = self._compiled_cache.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        if self._same_graph(spec):
            self._compiled_cache[id(spec)] = (spec, self._compiled)
            return self._compiled
        return self._compile(spec)

    async def _drive(self, run: FlowRun, on_end: Callable[[], None] | None = None) -> FlowResult:
        self._active[run.flow_id] = run
        try:
            result = await run.drive()
        finally:
            self._active.pop(run.flow_id, None)
            if on_end is not None:
                on_end()
        if not self._store.durable:
            if run.waiting and not run.halted:
                self._parked[run.flow_id] = run
            else:
                self._parked.pop(run.flow_id, None)
        return result

    async def arun(
        self,
        input_message: str,
        flow_id: UUID | str | None = None,
        *,
        parent_flow_id: UUID | None = None,
        on_event: EventHandler | None = None,
    ) -> FlowResult:
        """Run a new flow to its end or first pause; return its result."""
        extra = [("on_event", on_event)] if on_event is not None else []
        run = self._new_run(input_message, flow_id, parent_flow_id, extra)
        try:
            await self._start_new(run)
        except FlowExistsError:
            raise FlowStateError(
                f"flow {run.flow_id} already exists in the store; use resume() or recover()"
            ) from None
        if run.control.abort is not None:
            return await self._drive(run)  # (finish() reports it FAILED)
        return await self._continue(run)

    async def _start_new(self, run: FlowRun) -> None:
        """Store the new flow and queue its start node. The store failing once the
        flow is stored aborts the run instead of raising: like any store failure of
        a stored flow, driving it gives a FAILED result, the flow left running for
        recover() and its lease released. (A store that fails to store the flow
        raises its own error: there is no flow to report on.)"""
        try:
            await run.start_new()
        except StoreUnavailableError as exc:
            run.control.fail_with(exc)

    async def _continue(self, run: FlowRun) -> FlowResult:
        """Drive the run in this process, or hand it to a remote dispatcher's workers
        and follow it until it pauses or ends."""
        if not self.remote:
            return await self._drive(run)
        after = await remote_run.hand_off(self, run)
        return await remote_run.follow(self, run.flow_id, after, run.started, run.extra_listeners)

    async def asubmit(self, input_message: str, flow_id: UUID | None = None) -> UUID:
        """Store a new flow with its start node queued, run nothing, and return its
        id: another process advances it (`FlowStepper`, a distributed dispatcher)
        or recovers it. Needs a durable store. With a remote dispatcher the flow is
        handed to its workers."""
        if not self._store.durable:
            raise FlowStateError(
                f"submit() needs a durable store; {self.store_name()} keeps flows in this "
                "process only: use run()"
            )
        run = self._new_run(input_message, flow_id, None)
        try:
            await run.start_new()
        except FlowExistsError:
            raise FlowStateError(
                f"flow {run.flow_id} already exists in the store; use resume() or recover()"
            ) from None
        except StoreUnavailableError:
            await finish.release_after_outage(run)
            raise
        if self.remote:
            await remote_run.hand_off(self, run)
        else:
            await run.lease.release()
        return run.flow_id

    def submit(self, input_message: str, flow_id: UUID | None = None) -> UUID:
        """Synchronous `asubmit`."""
        return run_sync(self.asubmit(input_message, flow_id))

    def run(self, input_message: str, flow_id: UUID | str | None = None) -> FlowResult:
        """Run a new flow synchronously (from scripts, or inside a running event loop)."""
        return run_sync(self.arun(input_message, flow_id))

    async def run_async(
        self, input_message: str, flow_id: UUID | str | None = None
    ) -> AsyncIterator[FlowEvent]:
        """Run a new flow, yielding its events as they happen.

        Breaking out of the iteration stops the flow.
        """
        if self.remote:
            async for event in remote_run.run_async(self, input_message, flow_id):
                yield event
            return
        queue: asyncio.Queue[Any] = asyncio.Queue()
        run = self._new_run(input_message, flow_id, None, [("run_async", queue.put_nowait)])
        run.yield_each_step = True
        async for event in self._stream(run, queue, lambda: self._start_new(run)):
            yield event

    async def _stream(
        self, run: FlowRun, queue: asyncio.Queue[Any], prepare: Callable[[], Any]
    ) -> AsyncIterator[FlowEvent]:
        async def go() -> FlowResult:
            try:
                await prepare()
            except BaseException:
                queue.put_nowait(_END)
                raise
            return await self._drive(run, on_end=lambda: queue.put_nowait(_END))

        task = asyncio.ensure_future(go())
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                yield item
            await task
        finally:
            if not task.done():
                run.request_stop("the run_async consumer stopped iterating")
                await asyncio.gather(task, return_exceptions=True)

    def _same_graph(self, spec: GraphSpec) -> bool:
        return spec is self.graph or (spec.id == self.graph.id and spec == self.graph)

    @property
    def active_flows(self) -> list[UUID]:
        """Flows running in this runner right now."""
        return list(self._active)


_STORE_METHODS = (
    "save_node_execution",
    "get_node_execution",
    "get_all_node_executions",
    "save_memory",
    "get_memory",
    "get_all_memory",
    "delete_memory",
    "save_messages",
    "get_messages",
    "append_message",
    "clear_flow",
)


def _check_component(role: str, value: Any, needed: tuple[str, ...]) -> None:
    """Fail at construction, not mid-flow, when an argument is not what its role needs."""
    if value is None:
        return
    missing = [name for name in needed if not hasattr(value, name)]
    if missing:
        raise TypeError(
            f"{role} {type(value).__name__} is not a {role}: it lacks {', '.join(missing)}"
        )


__all__ = ["DEFAULT_MAX_VISITS", "FlowRunner", "NodeConfigError", "UnknownNodeTypeError"]

"""`FlowRunner`: the public face of the engine."""

from __future__ import annotations

import asyncio
import difflib
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from uuid import UUID, uuid4

from quartermaster_engine._sync import run_sync
from quartermaster_engine.control_nodes import control_executors
from quartermaster_engine.dispatchers.base import TaskDispatcher
from quartermaster_engine.dispatchers.remote import RemoteDispatcher, is_remote
from quartermaster_engine.dispatchers.sync_dispatcher import SyncDispatcher
from quartermaster_engine.events import FlowEvent, FlowResumed, FlowStopped
from quartermaster_engine.memory.persistent_memory import AgentMemory, InMemoryPersistence
from quartermaster_engine.messaging.context_manager import ContextManager
from quartermaster_engine.nodes import NodeExecutor, NodeRegistry, is_async_executor
from quartermaster_engine.runner import remote_run
from quartermaster_engine.runner.compiled import CNode, CompiledGraph
from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.runner.event_log import DEFAULT_POLL_SECONDS, read_log
from quartermaster_engine.runner.flow_run import FlowRun
from quartermaster_engine.runner.lease import DEFAULT_LEASE_SECONDS, LeaseKeeper, new_owner
from quartermaster_engine.runner.result import FlowResult, NodeResults
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import FlowExistsError, FlowNotFoundError
from quartermaster_engine.stores.memory_store import InMemoryStore
from quartermaster_engine.stores.records import FlowSnapshot, FlowStatus, FlowUpdate
from quartermaster_engine.types import GraphSpec, NodeType

EventHandler = Callable[[FlowEvent], Any]

#: How many times one node may run in one flow unless the node says otherwise
#: (metadata ``max_visits``).
DEFAULT_MAX_VISITS = 100

#: Seconds `resume` and `recover` wait for a flow's lease under a remote dispatcher.
REMOTE_LEASE_WAIT = 10.0

_END = object()

logger = logging.getLogger("quartermaster_engine.runner")


class FlowRunner:
    """Runs flows of one graph.

    ``node_registry`` maps node types to executors; the engine's Start1 and
    End1 executors are used for those types when the registry has none. Without
    a registry, every installed node executor plugin is used.
    ``store`` keeps flow state (default: a new `InMemoryStore`), ``dispatcher``
    decides how activations run (default: `SyncDispatcher`), ``context_manager``
    cuts input messages to the context window, ``on_event`` receives every
    event, and each of ``sinks`` (objects with ``emit(event)``) too.

    Every method has a synchronous form (``run``) that works from scripts and
    from inside a running event loop, and an async one (``arun``).
    """

    def __init__(
        self,
        graph: GraphSpec,
        node_registry: NodeRegistry | None = None,
        store: Any | None = None,
        dispatcher: TaskDispatcher | None = None,
        context_manager: ContextManager | None = None,
        on_event: EventHandler | None = None,
        *,
        sinks: Iterable[Any] = (),
        max_visits: int | None = DEFAULT_MAX_VISITS,
        persistence: Any | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        _check_component("store", store, _STORE_METHODS)
        _check_component("dispatcher", dispatcher, _DISPATCHER_ATTRIBUTES)
        if node_registry is not None and not callable(getattr(node_registry, "get_executor", None)):
            raise TypeError(
                f"node_registry must have a get_executor(node_type) method; "
                f"got {type(node_registry).__name__}"
            )
        self.graph = graph
        self._compiled = CompiledGraph(graph)
        self.node_registry = node_registry
        self.store = store if store is not None else InMemoryStore()
        self.dispatcher: TaskDispatcher = dispatcher if dispatcher is not None else SyncDispatcher()
        #: The dispatcher runs activations on workers elsewhere (`RemoteDispatcher`).
        self.remote = is_remote(self.dispatcher)
        self.context_manager = context_manager if context_manager is not None else ContextManager()
        self.on_event = on_event
        self.sinks = list(sinks)
        self.max_visits = max_visits
        #: How long this runner's hold on a flow it drives lasts unless renewed.
        self.lease_seconds = lease_seconds
        self._owner: tuple[int, str] | None = None
        #: The `EngineConfig` a runner built by `from_config` came from.
        self.config: Any = None
        self._store = StoreAdapter(self.store)
        if self.remote and (not self._store.durable or isinstance(self.store, InMemoryStore)):
            raise TypeError(
                f"dispatcher {type(self.dispatcher).__name__} runs flows on workers in other "
                f"processes: it needs a durable store they share (sqlite, redis); "
                f"{self.store_name()} keeps flows in this process only"
            )
        self._persistence = persistence
        self._agent_memory: AgentMemory | None = None
        self._installed: NodeRegistry | None = None
        self._async_of: dict[int, tuple[NodeExecutor, bool]] = {}
        self._control = control_executors()
        # Backends this runner created (from_config) and must release in close().
        self._owned: list[Any] = []
        self._active: dict[UUID, FlowRun] = {}
        # Paused flows of stores without the durable contract live here until resumed.
        self._parked: dict[UUID, FlowRun] = {}
        # Compiled graphs other than our own (sub-graphs, restored flows), by object id.
        self._compiled_cache: dict[int, tuple[GraphSpec, CompiledGraph]] = {
            id(graph): (graph, self._compiled)
        }
        self._preflighted: set[int] = set()

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
        runner._installed = installed
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

    def _is_async(self, executor: NodeExecutor) -> bool:
        """Whether ``executor.execute`` is a coroutine function, asked once per executor
        (not once per flow: small flows would pay it every time)."""
        key = id(executor)
        hit = self._async_of.get(key)
        if hit is None or hit[0] is not executor:
            hit = self._async_of[key] = (executor, is_async_executor(executor))
        return hit[1]

    def _installed_executors(self) -> NodeRegistry:
        if self._installed is None:
            from quartermaster_engine.plugins.loader import load_plugins

            self._installed = load_plugins().node_registry()
        return self._installed

    def executor_for(self, node_type: str) -> tuple[NodeExecutor, bool] | None:
        """The executor of ``node_type`` and whether it is async, or None."""
        executor = self._resolve_executor(node_type)
        return None if executor is None else (executor, self._is_async(executor))

    def _resolve_executor(self, node_type: str) -> NodeExecutor | None:
        """With a ``node_registry``: its executors, then the engine's own Start1/End1
        (as in 0.1.5, nothing else runs). Without one: every installed node executor,
        loaded on first need. `from_config` passes a registry of the installed ones."""
        if self.node_registry is not None:
            executor = self.node_registry.get_executor(node_type)
            return executor if executor is not None else self._control.get(node_type)
        return self._installed_executors().get_executor(node_type)

    def _known_types(self) -> list[str]:
        """The node types this runner can run (for "did you mean" hints)."""
        if self.node_registry is None:
            registry: Any = self._installed_executors()
            extra: list[str] = []
        else:
            registry, extra = self.node_registry, list(self._control)
        list_types = getattr(registry, "list_types", None)
        types = list(list_types()) if callable(list_types) else []
        return types + [t for t in extra if t not in types]

    def missing_executor_message(self, cnode: CNode) -> str:
        close = difflib.get_close_matches(cnode.type_name, self._known_types(), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "`qm plugins` lists the installed ones"
        return f"no executor for node type {cnode.type_name!r} (node {cnode.describe()}); {hint}"

    def _compile(self, spec: GraphSpec) -> CompiledGraph:
        hit = self._compiled_cache.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        compiled = CompiledGraph(spec)
        self._compiled_cache[id(spec)] = (spec, compiled)
        return compiled

    def preflight(self, compiled: CompiledGraph | None = None) -> None:
        """Check, before anything runs, what can be known before: every node type that is
        not one of 0.1.5's has an executor, and every executor that can check its node's
        settings (``validate_node(node, graph) -> list[str]``) finds no problem.

        Runs once per graph per runner; `run` calls it. Raises `UnknownNodeTypeError`
        or `NodeConfigError` listing every problem at once.
        """
        compiled = compiled if compiled is not None else self._compiled
        if id(compiled) in self._preflighted:
            return
        spec = compiled.spec
        graph_name = spec.name or str(spec.id)
        known = {t.value for t in NodeType}
        unknown: list[str] = []
        # Problem -> the nodes that have it: one line per problem, not per node.
        problems: dict[str, list[str]] = {}
        checked: dict[str, NodeExecutor | None] = {}
        for cnode in compiled.nodes:
            if cnode.type_name not in checked:
                checked[cnode.type_name] = self._resolve_executor(cnode.type_name)
            executor = checked[cnode.type_name]
            if executor is None:
                # A remote dispatcher's workers may have executors this process lacks.
                if cnode.type_name not in known and not self.remote:
                    unknown.append(self.missing_executor_message(cnode))
                continue
            validate = getattr(executor, "validate_node", None)
            if callable(validate):
                for problem in validate(cnode.node, spec) or ():
                    problems.setdefault(problem, []).append(cnode.describe())
        if unknown:
            lines = "\n".join(f"  {line}" for line in unknown)
            raise UnknownNodeTypeError(
                f"graph {graph_name} uses node types with no executor:\n{lines}"
            )
        if problems:
            lines = "\n".join(
                f"  {'node' if len(nodes) == 1 else 'nodes'} {', '.join(nodes)}: {problem}"
                for problem, nodes in problems.items()
            )
            raise NodeConfigError(f"graph {graph_name} has invalid node settings:\n{lines}")
        self._preflighted.add(id(compiled))

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
        describe = getattr(self.store, "describe", None)
        return describe() if callable(describe) else type(self.store).__name__

    # -- running ----------------------------------------------------------------

    def _new_run(
        self,
        input_message: str,
        flow_id: UUID | None,
        parent_flow_id: UUID | None,
        listeners: Iterable[tuple[str, EventHandler]] = (),
        compiled: CompiledGraph | None = None,
    ) -> FlowRun:
        compiled = compiled if compiled is not None else self._compiled
        self.preflight(compiled)
        if not isinstance(input_message, str):
            raise TypeError(f"input_message must be a str, got {type(input_message).__name__}")
        fid = flow_id if flow_id is not None else uuid4()
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
        flow_id: UUID | None = None,
        *,
        parent_flow_id: UUID | None = None,
        on_event: EventHandler | None = None,
    ) -> FlowResult:
        """Run a new flow to its end or first pause; return its result."""
        extra = [("on_event", on_event)] if on_event is not None else []
        run = self._new_run(input_message, flow_id, parent_flow_id, extra)
        try:
            await run.start_new()
        except FlowExistsError:
            raise FlowStateError(
                f"flow {run.flow_id} already exists in the store; use resume() or recover()"
            ) from None
        return await self._continue(run)

    async def _continue(self, run: FlowRun) -> FlowResult:
        """Drive the run in this process, or hand it to a remote dispatcher's workers
        and follow it until it pauses or ends."""
        if not self.remote:
            return await self._drive(run)
        after = await self._hand_off(run)
        return await remote_run.follow(self, run.flow_id, after, run.started, run.extra_listeners)

    async def _hand_off(self, run: FlowRun) -> int:
        """Let the flow's lease go and give its pending activations to the remote
        workers; return the number of the last event logged before."""
        await run.lease.release()
        record = await self._store.call("get_flow", run.flow_id)
        dispatcher = self.dispatcher
        assert isinstance(dispatcher, RemoteDispatcher)
        await dispatcher.start(self, run.flow_id)
        return int(record.event_seq) if record is not None else 0

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
        if self.remote:
            await self._hand_off(run)
        else:
            await run.lease.release()
        return run.flow_id

    def submit(self, input_message: str, flow_id: UUID | None = None) -> UUID:
        """Synchronous `asubmit`."""
        return run_sync(self.asubmit(input_message, flow_id))

    def run(self, input_message: str, flow_id: UUID | None = None) -> FlowResult:
        """Run a new flow synchronously (from scripts, or inside a running event loop)."""
        return run_sync(self.arun(input_message, flow_id))

    async def run_async(
        self, input_message: str, flow_id: UUID | None = None
    ) -> AsyncIterator[FlowEvent]:
        """Run a new flow, yielding its events as they happen.

        Breaking out of the iteration stops the flow.
        """
        if self.remote:
            async for event in self._run_remote_async(input_message, flow_id):
                yield event
            return
        queue: asyncio.Queue[Any] = asyncio.Queue()
        run = self._new_run(input_message, flow_id, None, [("run_async", queue.put_nowait)])
        run.yield_each_step = True
        async for event in self._stream(run, queue, run.start_new):
            yield event

    async def _run_remote_async(
        self, input_message: str, flow_id: UUID | None
    ) -> AsyncIterator[FlowEvent]:
        """`run_async` with a remote dispatcher: the client's own events (FlowStarted),
        then the workers' from the durable log."""
        own: list[FlowEvent] = []
        run = self._new_run(input_message, flow_id, None, [("run_async", own.append)])
        await run.start_new()
        after = await self._hand_off(run)
        settled = False
        try:
            for event in own:
                yield event
            async for event in remote_run.relay(self, run.flow_id, after, ()):
                yield event
            settled = True
        finally:
            if not settled:
                await self.astop(run.flow_id)

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

    # -- resume, recover, stop -------------------------------------------------------

    # -- child flows (sub-graphs) ------------------------------------------------------

    async def run_child(
        self, parent: FlowRun, graph: GraphSpec, input_text: str, flow_id: UUID
    ) -> FlowResult:
        """Run ``graph`` as a child flow of ``parent``: same store, executors and
        listeners; its events carry the parent's flow id; stopping the parent stops it.

        If the child already exists (the parent is being recovered after a crash), it
        is continued where it stopped: recovered if it was running, else its stored
        result (paused or ended) is returned.
        """
        run = self._new_run(
            input_text, flow_id, parent.flow_id, parent.extra_listeners, self._compile(graph)
        )
        run.yield_each_step = parent.yield_each_step
        try:
            await run.start_new()
        except FlowExistsError:
            existing = await self._load(flow_id, parent.extra_listeners)
            status = existing.status_on_load or FlowStatus.RUNNING
            if status is not FlowStatus.RUNNING:
                await existing.lease.release()
                return _stored_result(existing, status)
            existing.yield_each_step = parent.yield_each_step
            return await self._drive_child(parent, existing)
        return await self._drive_child(parent, run)

    async def resume_child(
        self, parent: FlowRun, flow_id: UUID, user_input: str, node_id: UUID | str | None
    ) -> FlowResult:
        """Give a paused child flow its answer and continue it."""
        run = await self._load(flow_id, parent.extra_listeners)
        status = run.status_on_load or FlowStatus.PAUSED
        if status.is_terminal:
            await run.lease.release()
            raise FlowStateError(f"child flow {flow_id} is {status.value}; nothing to resume")
        await self._answer(run, user_input, node_id)
        return await self._drive_child(parent, run)

    async def _drive_child(self, parent: FlowRun, run: FlowRun) -> FlowResult:
        parent.children.add(run)
        if parent.cancel_requested:
            run.request_stop("the parent flow is stopping")
        try:
            return await self._drive(run)
        finally:
            parent.children.discard(run)

    async def _load(
        self,
        flow_id: UUID,
        listeners: Iterable[tuple[str, EventHandler]] = (),
        *,
        drive: bool = True,
        wait: float = 0.0,
        about: str = "",
    ) -> FlowRun:
        """A run of a stored flow. With ``drive`` this runner first takes the flow's
        lease (waiting up to ``wait`` seconds for a live driver to let go; else
        `FlowBusyError`), then reads the flow, so what it reads no other process
        changes while it holds the lease."""
        if flow_id in self._active:
            raise FlowStateError(f"flow {flow_id} is running in this process")
        if not self._store.durable:
            parked = self._parked.get(flow_id)
            if parked is None:
                raise FlowNotFoundError(
                    f"flow {flow_id} is not paused in this process, and the store "
                    f"({self.store_name()}) cannot continue flows across processes"
                )
            parked.control.resume()
            return parked
        lease = self.lease_for(flow_id)
        if drive:
            try:
                await lease.acquire(wait=wait, about=about)
            except FlowNotFoundError:
                raise FlowNotFoundError(
                    f"no flow {flow_id} in the store ({self.store_name()})"
                ) from None
        try:
            snapshot: FlowSnapshot | None = await self._store.call("load_flow", flow_id)
            if snapshot is None:
                raise FlowNotFoundError(f"no flow {flow_id} in the store ({self.store_name()})")
            compiled = self.compiled_for(snapshot.flow.graph)
            run = FlowRun(
                self,
                compiled,
                flow_id,
                snapshot.flow.input,
                lease,
                parent_flow_id=snapshot.flow.parent_flow_id,
                listeners=listeners,
            )
            run.restore(snapshot)
        except BaseException:
            if drive:
                await lease.release()
            raise
        status = snapshot.flow.status
        if status is FlowStatus.PAUSED and (run.state.ready or run.state.timers):
            # An answer was committed but the process died before marking the flow
            # running again: it is a running flow to recover, not a paused one.
            status = FlowStatus.RUNNING
        run.status_on_load = status
        return run

    def _lease_wait(self, wait: float) -> float:
        """How long to wait for a flow's lease: a remote dispatcher's workers hold it
        only while they commit, so waiting for them is always short."""
        return max(wait, REMOTE_LEASE_WAIT) if self.remote else wait

    def _same_graph(self, spec: GraphSpec) -> bool:
        return spec is self.graph or (spec.id == self.graph.id and spec == self.graph)

    async def aresume(
        self, flow_id: UUID, user_input: str, node_id: UUID | str | None = None
    ) -> FlowResult:
        """Give ``user_input`` to a waiting node of a paused flow and continue it.

        ``node_id`` (an id or a node name) picks the node when several wait;
        by default the one that started waiting first.
        """
        about = "it cannot be resumed now"
        if node_id is not None:
            about = f"node {node_id!r} cannot be answered now"
        run = await self._load(flow_id, wait=self._lease_wait(0.0), about=about)
        status = run.status_on_load or FlowStatus.PAUSED
        if status.is_terminal:
            await run.lease.release()
            raise FlowStateError(f"flow {flow_id} is {status.value}; there is nothing to resume")
        run.started = time.monotonic()
        await self._answer(run, user_input, node_id)
        return await self._continue(run)

    async def _answer(self, run: FlowRun, user_input: str, node_id: UUID | str | None) -> None:
        try:
            await run.answer(user_input, node_id)
        except BaseException:
            await run.lease.release()
            raise

    def resume(
        self, flow_id: UUID, user_input: str, node_id: UUID | str | None = None
    ) -> FlowResult:
        """Synchronous `aresume`."""
        return run_sync(self.aresume(flow_id, user_input, node_id))

    async def arecover(self, flow_id: UUID, *, wait: float = 0.0) -> FlowResult:
        """Continue a flow whose run was interrupted (a crash, a lost store connection).

        Only activations that had not committed run again. A paused flow stays
        paused and an ended flow is left as it is; both return their result.
        While another process drives the flow (holds its live lease) this raises
        `FlowBusyError`, after waiting up to ``wait`` seconds for it to let go;
        a driver that died on this host is taken over at once, one elsewhere once
        its lease runs out.
        """
        run = await self._load(flow_id, wait=self._lease_wait(wait), about="it is not interrupted")
        status = run.status_on_load or FlowStatus.RUNNING
        if status is not FlowStatus.RUNNING:
            await run.lease.release()
            return _stored_result(run, status)
        run.started = time.monotonic()
        if run.listening and not self.remote:
            # (Remote: no commit of this process would log it; the workers' events follow.)
            run.emit(FlowResumed(flow_id=flow_id, reason="recover"))
        if run.state.untouched:
            await run.queue_start()  # died between creating the flow and queueing Start
        return await self._continue(run)

    def recover(self, flow_id: UUID, *, wait: float = 0.0) -> FlowResult:
        """Synchronous `arecover`."""
        return run_sync(self.arecover(flow_id, wait=wait))

    def stop(self, flow_id: UUID) -> None:
        """Stop a flow: nothing new starts, running executors are cancelled (async)
        or see ``context.cancelled`` (blocking); the flow ends as stopped.

        Works from any thread. A paused flow in the store is marked stopped.
        """
        run = self._active.get(flow_id)
        if run is not None and run.loop is not None:
            if _running_loop() is run.loop:
                run.request_stop("stop() called")
            else:
                run.request_stop_threadsafe("stop() called")
            return
        run_sync(self.astop(flow_id))

    async def astop(self, flow_id: UUID) -> None:
        """Async `stop`."""
        run = self._active.get(flow_id)
        if run is not None:
            if run.loop is asyncio.get_running_loop():
                run.request_stop("stop() called")
            else:
                run.request_stop_threadsafe("stop() called")
            return
        parked = self._parked.pop(flow_id, None)
        if parked is not None:
            parked.emit(FlowStopped(flow_id=flow_id, reason="stop() called"))
            return
        if not self._store.durable:
            raise FlowNotFoundError(f"flow {flow_id} is not running in this process")
        record = await self._store.call("get_flow", flow_id)
        if record is None:
            raise FlowNotFoundError(f"no flow {flow_id} in the store ({self.store_name()})")
        if record.status.is_terminal:
            return
        seq = record.event_seq + 1
        event = FlowStopped(flow_id=flow_id, reason="stop() called", seq=seq, ts=time.time())
        # No lease: a stop wins over a driver elsewhere, whose next commit is refused.
        await self._store.call(
            "update_flow",
            flow_id,
            FlowUpdate(
                status=FlowStatus.STOPPED,
                updated_at=time.time(),
                event_seq=seq,
                events=[event],
                release_lease=True,
            ),
        )
        for name, listener in self.listeners():
            try:
                listener(event)
            except Exception:  # a listener never breaks a stop
                logger.exception("event listener %s failed on FlowStopped", name)

    # -- inspection ---------------------------------------------------------------------

    async def events(
        self,
        flow_id: UUID,
        *,
        after: int = 0,
        follow: bool = False,
        poll: float = DEFAULT_POLL_SECONDS,
    ) -> AsyncIterator[FlowEvent]:
        """The flow's events from the store's durable log (every event but tokens),
        numbered above ``after``; from any process. With ``follow`` it keeps
        yielding new events until the flow has ended (see `event_log.read_log`)."""
        async for event in read_log(self._store, flow_id, after=after, follow=follow, poll=poll):
            yield event

    async def aget_result(self, flow_id: UUID) -> FlowResult:
        """The current result of a stored flow, without running anything."""
        run = await self._load(flow_id, drive=False)
        return _stored_result(run, run.status_on_load or FlowStatus.PAUSED)

    def get_result(self, flow_id: UUID) -> FlowResult:
        """Synchronous `aget_result`."""
        return run_sync(self.aget_result(flow_id))

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
_DISPATCHER_ATTRIBUTES = ("concurrent", "max_concurrency", "run_blocking", "shutdown")


def _check_component(role: str, value: Any, needed: tuple[str, ...]) -> None:
    """Fail at construction, not mid-flow, when an argument is not what its role needs."""
    if value is None:
        return
    missing = [name for name in needed if not hasattr(value, name)]
    if missing:
        raise TypeError(
            f"{role} {type(value).__name__} is not a {role}: it lacks {', '.join(missing)}"
        )


class UnknownNodeTypeError(ValueError):
    """The graph uses a node type no installed executor handles."""


class NodeConfigError(ValueError):
    """A node's settings are invalid (found before the flow starts)."""


def _stored_result(run: FlowRun, status: FlowStatus) -> FlowResult:
    """The result of a flow as the store holds it (nothing runs)."""
    end = run.state.end_record
    record_error = run.describe_failure()
    return FlowResult(
        flow_id=run.flow_id,
        success=status is FlowStatus.COMPLETED,
        final_output=(end.result or "") if end is not None else "",
        output_data=end.output_data if end is not None else {},
        error=record_error,
        node_results=NodeResults(run.state.latest),
        duration_seconds=0.0,
        status=status if status is not FlowStatus.RUNNING else FlowStatus.PAUSED,
        waiting=run.waiting_nodes(),
    )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


__all__ = ["DEFAULT_MAX_VISITS", "FlowRunner", "NodeConfigError", "UnknownNodeTypeError"]

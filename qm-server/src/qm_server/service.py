"""`FlowService`: starts, resumes, stops and deletes flows on one store, for the HTTP layer.

Flows run as tasks on the server's event loop, through one `FlowRunner` per
graph, all sharing the store and dispatcher the configuration names. Every
runner's ``on_event`` is the event log's ``record``, so whatever a flow does
here (start, pause, resume, stop) is followable over SSE.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from qm_server.errors import ApiError, unknown_flow
from qm_server.event_source import InProcessEventLog
from quartermaster_engine import assembly
from quartermaster_engine.config import BackendConfig, ConfigError, EngineConfig
from quartermaster_engine.nodes import NodeRegistry
from quartermaster_engine.plugins.loader import load_plugins
from quartermaster_engine.runner import (
    FlowResult,
    FlowRunner,
    FlowStateError,
    NodeConfigError,
    UnknownNodeTypeError,
)
from quartermaster_engine.runner.arguments import InvalidTextError
from quartermaster_engine.runner.shared_store import check_dispatcher_store
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.records import FlowRecord, FlowSnapshot, FlowStatus
from quartermaster_graph.models import GraphSpec

logger = logging.getLogger("qm_server")


#: Runners kept (one per graph, most recently used): inline graphs each make
#: one, and a server must not keep one per graph ever posted.
MAX_RUNNERS = 64


class FlowService:
    """What the API does to flows. Create it, ``await open()``, ``await close()``."""

    def __init__(
        self,
        config: EngineConfig,
        events: InProcessEventLog,
        *,
        node_registry: NodeRegistry | None = None,
        graphs_folder: Path | None = None,
    ) -> None:
        self.config = config
        self._graphs_folder = graphs_folder
        self.events = events
        self._node_registry = node_registry
        self.store: Any = None
        self._dispatcher: Any = None
        self._adapter: StoreAdapter | None = None
        # One runner per graph (by graph id), and the runner of each flow running here.
        self._runners: OrderedDict[UUID, tuple[GraphSpec, FlowRunner]] = OrderedDict()
        self._running: dict[UUID, FlowRunner] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._locks: dict[UUID, asyncio.Lock] = {}

    async def open(self) -> None:
        """Build the configured store and dispatcher; the store must keep flow records."""
        plugins = load_plugins()
        if self._graphs_folder is not None and SUB_GRAPH in plugins.node_executors:
            self.config = _subgraphs_inside(self.config, self._graphs_folder)
        self.store = assembly.build_store(self.config, plugins)
        self._adapter = StoreAdapter(self.store)
        if not self._adapter.durable:
            raise ConfigError(
                f"store {self.config.store.name!r} does not keep flow records "
                "(the DurableStore contract); qm-server needs one"
            )
        if self.config.source_of("dispatcher") == "default":
            self.config = _loop_free_dispatcher(self.config, plugins.dispatchers.names())
        self._dispatcher = assembly.build_dispatcher(self.config, plugins)
        check_dispatcher_store(self._dispatcher, self.store)

    async def close(self) -> None:
        """Cancel flows still running (a durable store keeps them for ``qm recover``),
        then release the runners, the dispatcher and the store."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, runner in self._runners.values():
            await runner.aclose()
        for item, method in ((self._dispatcher, "shutdown"), (self.store, "close")):
            fn = getattr(item, method, None)
            if callable(fn):
                result = fn()
                if inspect.isawaitable(result):
                    await result

    @property
    def adapter(self) -> StoreAdapter:
        assert self._adapter is not None, "FlowService.open() was not awaited"
        return self._adapter

    def runner_for(self, spec: GraphSpec) -> FlowRunner:
        """The runner of ``spec`` (a new one when the graph changed)."""
        hit = self._runners.get(spec.id)
        if hit is not None and (hit[0] is spec or hit[0] == spec):
            self._runners.move_to_end(spec.id)
            return hit[1]
        runner = FlowRunner.from_config(
            spec,
            self.config,
            store=self.store,
            dispatcher=self._dispatcher,
            on_event=self.events.record,
            **({"node_registry": self._node_registry} if self._node_registry else {}),
        )
        if hit is not None:
            self._retire(hit[1])
        self._runners[spec.id] = (spec, runner)
        self._runners.move_to_end(spec.id)
        busy = list(self._running.values())
        for graph_id in list(self._runners)[:-1]:  # least recently used first
            if len(self._runners) <= MAX_RUNNERS:
                break
            old = self._runners[graph_id][1]
            if old not in busy:
                del self._runners[graph_id]
                self._retire(old)
        return runner

    @property
    def runner_count(self) -> int:
        """How many graphs' runners this service keeps (at most `MAX_RUNNERS`, plus
        those whose flows are running)."""
        return len(self._runners)

    def _retire(self, runner: FlowRunner) -> None:
        """Release a runner no graph of this server maps to any more (its flows
        still running keep it until they end)."""
        if runner in self._running.values():
            return
        task = asyncio.ensure_future(runner.aclose())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    # -- reading -------------------------------------------------------------------

    async def record(self, flow_id: UUID) -> FlowRecord:
        record: FlowRecord | None = await self.adapter.call("get_flow", flow_id)
        if record is None:
            raise unknown_flow(flow_id)
        return record

    async def snapshot(self, flow_id: UUID) -> FlowSnapshot:
        snapshot: FlowSnapshot | None = await self.adapter.call("load_flow", flow_id)
        if snapshot is None:
            raise unknown_flow(flow_id)
        return snapshot

    async def list(
        self, status: FlowStatus | None, limit: int, offset: int
    ) -> tuple[list[FlowRecord], bool]:
        """A page of flows, most recently updated first, and whether more follow."""
        records: list[FlowRecord] = await self.adapter.call(
            "list_flows", status=status, limit=offset + limit + 1
        )
        page = records[offset : offset + limit]
        return page, len(records) > offset + limit

    def is_running_here(self, flow_id: UUID) -> bool:
        return flow_id in self._running

    # -- acting --------------------------------------------------------------------

    async def start(
        self, spec: GraphSpec, text: str, *, wait: bool
    ) -> tuple[UUID, FlowResult | None]:
        """Start a flow of ``spec``; with ``wait``, its result (end or first pause)."""
        runner = self.runner_for(spec)
        flow_id = uuid4()
        result = await self._launch(flow_id, runner, lambda: runner.arun(text, flow_id), wait)
        return flow_id, result

    async def resume(
        self, flow_id: UUID, answer: str, node: str | None, *, wait: bool
    ) -> FlowResult | None:
        """Give ``answer`` to a waiting node of a paused flow and continue it."""
        async with self._acting_on(flow_id):
            record = await self.record(flow_id)
            if flow_id in self._running or record.status is not FlowStatus.PAUSED:
                state = "running" if flow_id in self._running else record.status.value
                raise ApiError(
                    409, "flow_not_waiting", f"flow {flow_id} is {state}; no node waits for input"
                )
            runner = self.runner_for(record.graph)
            task = await self._start_task(
                flow_id, runner, lambda: runner.aresume(flow_id, answer, node)
            )
        return await self._outcome(task, wait)

    @asynccontextmanager
    async def _acting_on(self, flow_id: UUID) -> AsyncIterator[None]:
        """One resume, stop or delete of a flow at a time in this server (each checks
        the flow's state, then acts on it: two at once acted on the same state)."""
        lock = self._locks.get(flow_id)
        if lock is None:
            lock = self._locks[flow_id] = asyncio.Lock()
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._locks.get(flow_id) is lock:
                del self._locks[flow_id]

    async def _launch(
        self,
        flow_id: UUID,
        runner: FlowRunner,
        go: Callable[[], Awaitable[FlowResult]],
        wait: bool,
    ) -> FlowResult | None:
        """Run ``go`` as a task that outlives the request. Return once the flow's first
        event is out (so the flow is in the store and errors found before running are
        the caller's), or with ``wait`` once the task is done."""
        return await self._outcome(await self._start_task(flow_id, runner, go), wait)

    async def _outcome(self, task: asyncio.Task[FlowResult], wait: bool) -> FlowResult | None:
        """None while ``task`` runs (unless ``wait``), else its result."""
        if not wait and not task.done():
            return None
        return await _translated(asyncio.shield(task))

    async def _start_task(
        self, flow_id: UUID, runner: FlowRunner, go: Callable[[], Awaitable[FlowResult]]
    ) -> asyncio.Task[FlowResult]:
        """``go`` as a task, once the flow's first event is out or the task ended."""
        subscription = self.events.subscribe(flow_id)
        self._running[flow_id] = runner

        async def drive() -> FlowResult:
            try:
                return await go()
            finally:
                if self._running.get(flow_id) is runner:
                    del self._running[flow_id]

        task = asyncio.ensure_future(drive())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        try:
            first = asyncio.ensure_future(subscription.next(within=3600))
            await asyncio.wait({task, first}, return_when=asyncio.FIRST_COMPLETED)
            first.cancel()
        finally:
            subscription.close()
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, _EXPECTED):
                logger.error("a flow task failed", exc_info=exc)

    async def stop(self, flow_id: UUID) -> None:
        """Stop a running or paused flow; an ended flow is left as it is."""
        async with self._acting_on(flow_id):
            runner = self._running.get(flow_id)
            if runner is None:
                record = await self.record(flow_id)
                if record.status.is_terminal:
                    raise ApiError(
                        409,
                        "flow_ended",
                        f"flow {flow_id} is {record.status.value}; nothing to stop",
                    )
                runner = self.runner_for(record.graph)
            await runner.astop(flow_id)

    async def delete(self, flow_id: UUID) -> None:
        async with self._acting_on(flow_id):
            if flow_id in self._running:
                raise ApiError(409, "flow_running", f"flow {flow_id} is running; stop it first")
            if not await self.adapter.call("delete_flow", flow_id):
                raise unknown_flow(flow_id)
            self.events.forget(flow_id)


#: The dispatchers a server uses when its configuration names none, best first:
#: both run blocking executors off the event loop, so one slow node never stalls
#: the server's other requests (the engine's own default, ``sync``, runs them
#: inline on the loop).
SERVER_DISPATCHERS = ("thread", "async")


def _loop_free_dispatcher(config: EngineConfig, installed: list[str]) -> EngineConfig:
    name = next(n for n in SERVER_DISPATCHERS if n in installed or n == "async")
    return config.model_copy(update={"dispatcher": BackendConfig(name=name)})


#: The node type whose graph references the server confines to its graphs folder.
SUB_GRAPH = "SubAssistant1"


def _subgraphs_inside(config: EngineConfig, folder: Path) -> EngineConfig:
    """``config`` with sub-graph file references resolving only inside ``folder``
    (the std pack's ``root`` setting), as top-level graph names do: an inline graph
    must not read the server's files through a sub-graph path."""
    section = {**config.nodes.get(SUB_GRAPH, {}), "root": str(folder)}
    return config.model_copy(update={"nodes": {**config.nodes, SUB_GRAPH: section}})


_EXPECTED = (FlowStateError, UnknownNodeTypeError, NodeConfigError, LookupError, InvalidTextError)


async def _translated(awaitable: Awaitable[FlowResult]) -> FlowResult:
    """The result, with the engine's errors about the request as `ApiError`s."""
    try:
        return await awaitable
    except FlowStateError as exc:
        raise ApiError(409, "flow_not_waiting", str(exc)) from None
    except UnknownNodeTypeError as exc:
        raise ApiError(422, "unknown_node_type", str(exc).split("\n")[0], _lines(exc)) from None
    except NodeConfigError as exc:
        raise ApiError(422, "invalid_node_settings", str(exc).split("\n")[0], _lines(exc)) from None


def _lines(exc: BaseException) -> list[str]:
    return [line.strip() for line in str(exc).split("\n")[1:] if line.strip()]


async def check_backends(config: EngineConfig) -> None:
    """Build the configured store and dispatcher once and release them: ``qm serve``
    reports a wrong configuration in one line before it listens, rather than in a
    traceback from the server's start-up."""
    service = FlowService(config, InProcessEventLog())
    try:
        await service.open()
    finally:
        await service.close()

"""`FlowService`: starts, resumes, stops and deletes flows, for the HTTP layer.

The server holds one `Engine`, built from the configuration: the store, the
dispatcher and the executors every graph's flows share. Flows are driven by
tasks on the server's event loop; with a remote dispatcher (``celery``) the
engine only hands them to the workers and follows the store's durable log.
The engine's ``on_event`` is the event log's ``record``, so whatever a flow
does (start, pause, resume, stop) is followable over SSE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from qm_server.errors import ApiError, unknown_flow
from qm_server.event_source import InProcessEventLog
from quartermaster_engine.config import BackendConfig, ConfigError, EngineConfig
from quartermaster_engine.history import Checkpoint, ForkEdits
from quartermaster_engine.nodes import NodeRegistry
from quartermaster_engine.plugins.loader import load_plugins
from quartermaster_engine.runner import (
    Engine,
    FlowBusyError,
    FlowResult,
    FlowStateError,
    NodeConfigError,
    UnknownNodeTypeError,
)
from quartermaster_engine.runner.arguments import InvalidTextError
from quartermaster_engine.runner.timers import can_park
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.stores.base import FlowNotFoundError
from quartermaster_engine.stores.records import FlowRecord, FlowSnapshot, FlowStatus
from quartermaster_graph.models import GraphSpec

logger = logging.getLogger("qm_server")


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
        self._engine: Engine | None = None
        # The flows driven (or followed) by a task of this server right now.
        self._running: set[UUID] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._clock: asyncio.Task[None] | None = None
        self._locks: dict[UUID, asyncio.Lock] = {}

    async def open(self) -> None:
        """Build the engine; its store must keep flow records, and one a remote
        dispatcher's workers share (the engine checks that)."""
        plugins = load_plugins()
        if self._graphs_folder is not None and SUB_GRAPH in plugins.node_executors:
            self.config = _subgraphs_inside(self.config, self._graphs_folder)
        if self.config.source_of("dispatcher.name") == "default":
            self.config = _loop_free_dispatcher(self.config, plugins.dispatchers.names())
        extra: dict[str, Any] = {}
        if self._node_registry is not None:
            extra["node_registry"] = self._node_registry
        engine = Engine.from_config(self.config, on_event=self.events.record, **extra)
        if not engine.store_adapter.durable:
            await engine.aclose()
            raise ConfigError(
                f"store {self.config.store.name!r} does not keep flow records "
                "(the DurableStore contract); qm-server needs one"
            )
        self._engine = engine
        if can_park(engine):
            # The clock: flows sleeping on a timer park in the store (no task here
            # holds them) and this loop wakes them when due (docs/time.md).
            self._clock = asyncio.ensure_future(engine.keep_clock())

    async def close(self) -> None:
        """Cancel flows still running (a durable store keeps them for ``qm recover``)
        and the clock loop, then close the engine (its dispatcher and store)."""
        tasks = [*self._tasks, *([self._clock] if self._clock is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._engine is not None:
            await self._engine.aclose()

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "FlowService.open() was not awaited"
        return self._engine

    @property
    def adapter(self) -> StoreAdapter:
        return self.engine.store_adapter

    # -- reading -------------------------------------------------------------------

    async def record(self, flow_id: UUID) -> FlowRecord:
        try:
            return await self.engine.flows.get(flow_id)
        except FlowNotFoundError:
            raise unknown_flow(flow_id) from None

    async def snapshot(self, flow_id: UUID) -> FlowSnapshot:
        try:
            return await self.engine.flows.show(flow_id)
        except FlowNotFoundError:
            raise unknown_flow(flow_id) from None

    async def history(self, flow_id: UUID) -> tuple[list[Checkpoint], tuple[UUID, int] | None]:
        """The flow's checkpoints, one per commit, and the (flow, checkpoint) it was
        forked from (see `Engine.history`, `Engine.lineage`)."""
        try:
            return await self.engine.history(flow_id), await self.engine.lineage(flow_id)
        except FlowNotFoundError:
            raise unknown_flow(flow_id) from None

    async def list(
        self, status: FlowStatus | None, limit: int, offset: int
    ) -> tuple[list[FlowRecord], bool]:
        """A page of flows, most recently updated first, and whether more follow."""
        records = await self.engine.flows.list(status=status, limit=offset + limit + 1)
        page = records[offset : offset + limit]
        return page, len(records) > offset + limit

    def is_running_here(self, flow_id: UUID) -> bool:
        return flow_id in self._running

    # -- acting --------------------------------------------------------------------

    async def start(
        self, spec: GraphSpec, text: str, *, wait: bool
    ) -> tuple[UUID, FlowResult | None]:
        """Start a flow of ``spec``; with ``wait``, its result (end or first pause)."""
        engine = self.engine
        flow_id = uuid4()
        result = await self._launch(flow_id, lambda: engine.run(spec, text, flow_id), wait)
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
            engine = self.engine
            task = await self._start_task(flow_id, lambda: engine.resume(flow_id, answer, node))
        return await self._outcome(task, wait)

    async def edit(
        self,
        flow_id: UUID,
        memory: dict[str, Any] | None,
        messages: Sequence[dict[str, Any]] | None,
        node: str | None,
    ) -> int:
        """Edit a paused, failed or stopped flow (`Engine.update`); the edit's checkpoint."""
        async with self._acting_on(flow_id):
            self._not_running_here(flow_id, "edited")
            try:
                return await self.engine.update(
                    flow_id, memory=memory, messages=messages, node=node
                )
            except (FlowStateError, InvalidTextError):
                raise  # 409 / 400 invalid_text, by the app's handlers
            except ValueError as exc:
                raise ApiError(400, "invalid_edit", str(exc).split("\n")[0]) from None

    async def retry(self, flow_id: UUID, *, wait: bool) -> FlowResult | None:
        """Continue a failed flow from its failed activation (`Engine.retry`)."""
        async with self._acting_on(flow_id):
            self._not_running_here(flow_id, "retried")
            record = await self.record(flow_id)
            if record.status is not FlowStatus.FAILED:
                raise ApiError(
                    409,
                    "flow_not_failed",
                    f"flow {flow_id} is {record.status.value}; only a failed flow can be retried",
                )
            engine = self.engine
            task = await self._start_task(flow_id, lambda: engine.retry(flow_id))
        result = await self._outcome(task, wait, state_code="flow_state_conflict")
        # Without ``wait`` the answer is 202 alone, even when the retry ended at once
        # (errors found at once are still answered).
        return result if wait else None

    async def fork(
        self, flow_id: UUID, edits: ForkEdits, *, wait: bool
    ) -> tuple[UUID, FlowResult | None]:
        """Store a fork of ``flow_id`` (`Engine.fork`) and run it like a recovery."""
        engine = self.engine
        try:
            new_id = await engine.fork(flow_id, **edits)
        except FlowNotFoundError:
            raise unknown_flow(flow_id) from None
        except (FlowStateError, InvalidTextError):
            raise  # 409 (a replay that cannot pass a node, ...) / 400, by the app's handlers
        except (UnknownNodeTypeError, NodeConfigError) as exc:
            raise _graph_error(exc) from None
        except ValueError as exc:
            raise ApiError(400, "invalid_fork", str(exc).split("\n")[0]) from None
        result = await self._launch(new_id, lambda: engine.recover(new_id), wait)
        # Without ``wait`` the answer is the new id alone, even when the fork ended at once.
        return new_id, result if wait else None

    def _not_running_here(self, flow_id: UUID, what: str) -> None:
        if flow_id in self._running:
            raise ApiError(
                409, "flow_running", f"flow {flow_id} is running; it can be {what} once it stops"
            )

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
        self, flow_id: UUID, go: Callable[[], Awaitable[FlowResult]], wait: bool
    ) -> FlowResult | None:
        """Run ``go`` as a task that outlives the request. Return once the flow's first
        event is out (so the flow is in the store and errors found before running are
        the caller's), or with ``wait`` once the task is done."""
        return await self._outcome(await self._start_task(flow_id, go), wait)

    async def _outcome(
        self, task: asyncio.Task[FlowResult], wait: bool, state_code: str = "flow_not_waiting"
    ) -> FlowResult | None:
        """With ``wait``, its result; else None (the flow was accepted: ``202``, even
        when it has paused or ended already). A task that raised (an error found
        before the flow ran is the caller's) raises (a `FlowStateError` answered as 409
        ``state_code``)."""
        raised = task.done() and (task.cancelled() or task.exception() is not None)
        if not wait and not raised:
            return None
        return await _translated(asyncio.shield(task), state_code)

    async def _start_task(
        self, flow_id: UUID, go: Callable[[], Awaitable[FlowResult]]
    ) -> asyncio.Task[FlowResult]:
        """``go`` as a task, once the flow's first event is out or the task ended."""
        subscription = self.events.subscribe(flow_id)
        self._running.add(flow_id)

        async def drive() -> FlowResult:
            try:
                return await go()
            finally:
                self._running.discard(flow_id)

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
            if flow_id not in self._running:
                record = await self.record(flow_id)
                if record.status.is_terminal:
                    raise ApiError(
                        409,
                        "flow_ended",
                        f"flow {flow_id} is {record.status.value}; nothing to stop",
                    )
            await self.engine.stop(flow_id)

    async def delete(self, flow_id: UUID) -> None:
        async with self._acting_on(flow_id):
            if flow_id in self._running:
                raise ApiError(409, "flow_running", f"flow {flow_id} is running; stop it first")
            try:
                await self.engine.flows.delete(flow_id)
            except FlowNotFoundError:
                raise unknown_flow(flow_id) from None
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


async def _translated(
    awaitable: Awaitable[FlowResult], state_code: str = "flow_not_waiting"
) -> FlowResult:
    """The result, with the engine's errors about the request as `ApiError`s."""
    try:
        return await awaitable
    except FlowBusyError as exc:
        raise ApiError(409, "flow_busy", str(exc).split("\n")[0]) from None
    except FlowStateError as exc:
        raise ApiError(409, state_code, str(exc)) from None
    except (UnknownNodeTypeError, NodeConfigError) as exc:
        raise _graph_error(exc) from None


def _graph_error(exc: UnknownNodeTypeError | NodeConfigError) -> ApiError:
    """422 for a graph this server cannot run (a node type or node settings)."""
    code = "unknown_node_type" if isinstance(exc, UnknownNodeTypeError) else "invalid_node_settings"
    return ApiError(422, code, str(exc).split("\n")[0], _lines(exc))


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

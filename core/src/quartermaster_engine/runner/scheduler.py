"""The scheduler: runs one flow's activations to completion, pause, stop or failure.

A `FlowRun` owns one flow's state: the queue of ready activations, timers for
retries, the join slots of nodes with several incoming edges, visit counters,
loop activity and flow memory. Its loop pops ready activations and runs them
through the dispatcher; each outcome is committed to the store as one `Commit`
(record, memory updates, join deliveries, next activations) before anything
it enables can start. There is no recursion and no scan of past records: each
activation costs the same whatever the size of the graph or the flow.

Joins. A delivery along a forward edge goes to the oldest open join slot of
its target that has not yet received that edge, or opens a new slot. An
AwaitAll node fires when every forward incoming edge has delivered to the
slot, live or dead; an AwaitFirst node fires on the slot's first live delivery
and absorbs the rest. A node whose slot completes with dead deliveries only is
dead itself and passes dead signals on. A delivery along a back edge always
starts a new visit of its target. Dead signals on a loop's exit edges are held
until the loop has nothing in flight, because until then the exit may still be
taken (see `compiled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.context.node_execution import NodeExecution, NodeStatus
from quartermaster_engine.events import (
    FlowError,
    FlowEvent,
    FlowFinished,
    FlowPaused,
    FlowResumed,
    FlowStarted,
    FlowStopped,
    NodeDead,
    NodeFinished,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    TokenGenerated,
    UserInputRequired,
)
from quartermaster_engine.messaging.history import MessageLog
from quartermaster_engine.messaging.inputs import input_message
from quartermaster_engine.nodes import NodeExecutor, NodeResult
from quartermaster_engine.runner.compiled import (
    OUT_ALL,
    OUT_NONE,
    OUT_PICKED,
    OUT_START,
    THOUGHT_CONTINUE,
    THOUGHT_INHERIT,
    THOUGHT_SKIP,
    CEdge,
    CNode,
    CompiledGraph,
)
from quartermaster_engine.runner.result import FlowResult, NodeResults, WaitingNode
from quartermaster_engine.stores.base import StoreDataError
from quartermaster_engine.stores.records import (
    Activation,
    ActivationKey,
    Commit,
    Delivery,
    FlowRecord,
    FlowSnapshot,
    FlowStatus,
    FlowUpdate,
)
from quartermaster_engine.types import ErrorStrategy, Message, MessageRole, MessageType

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_runner import FlowRunner

logger = logging.getLogger("quartermaster_engine.runner")

_DEAD = None  # a dead delivery carries no source record
_MISSING = object()  # a join slot position that has not received its edge yet


class NodeError(Exception):
    """A node failure whose message is complete as it is (no exception type prefix)."""


class NodeTimeoutError(NodeError, TimeoutError):
    """An attempt ran longer than the node's ``timeout``."""


class FlowStateError(ValueError):
    """The flow is not in a state that allows the operation (resume a completed flow, ...)."""


class StoreUnavailableError(RuntimeError):
    """The store failed while the flow ran; the flow can be recovered once it is back."""


class UnstorableOutputError(RuntimeError):
    """A node produced data the store cannot save; the flow is failed (recovering it
    would only produce the same data again)."""


class BlockingCall:
    """The call a dispatcher's ``run_blocking`` receives for a blocking executor:
    calling it runs ``executor.execute(context)``; ``context`` tells the dispatcher
    which flow the call belongs to (``context.cancelled``, ``context.stop_flow``)."""

    __slots__ = ("context", "executor")

    def __init__(self, executor: NodeExecutor, context: ExecutionContext) -> None:
        self.executor = executor
        self.context = context

    def __call__(self) -> Any:
        return self.executor.execute(self.context)


class _JoinSlot:
    """One open join state of a node with several forward incoming edges."""

    __slots__ = ("count", "fired", "got", "live", "no")

    def __init__(self, no: int, width: int) -> None:
        self.no = no
        self.got: list[Any] = [_MISSING] * width
        self.count = 0
        self.live = 0
        self.fired = False


class _Stop(Exception):
    """Internal: the flow must end now (visit limit)."""


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, NodeError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fmt_seconds(value: float) -> str:
    return f"{value:g}"


class FlowRun:
    """The state and scheduling loop of one flow in this process."""

    def __init__(
        self,
        runner: FlowRunner,
        compiled: CompiledGraph,
        flow_id: UUID,
        input_text: str,
        *,
        parent_flow_id: UUID | None = None,
        listeners: Iterable[tuple[str, Callable[[FlowEvent], Any]]] = (),
    ) -> None:
        self.runner = runner
        self.cg = compiled
        self.graph = compiled.spec
        self.flow_id = flow_id
        self.input = input_text
        self.parent_flow_id = parent_flow_id
        self.store = runner._store
        self.durable = self.store.durable
        self.commit_sync = self.store.commit_is_sync
        dispatcher = runner.dispatcher
        self.dispatcher = dispatcher
        self.concurrent = bool(dispatcher.concurrent)
        self.max_concurrency = dispatcher.max_concurrency if self.concurrent else 1
        self.offloads_blocking = bool(getattr(dispatcher, "offloads_blocking", self.concurrent))
        self.context_manager = runner.context_manager
        self.max_visits = runner.max_visits
        n = len(compiled.nodes)
        self.executors: dict[str, tuple[NodeExecutor, bool] | None] = {}
        self.memory: dict[str, Any] = {}
        self._snapshot: dict[str, Any] | None = None
        self.visits = [0] * n
        self.slot_seq: dict[int, int] = {}
        self.joins: dict[int, deque[_JoinSlot]] = {}
        self.loop_active = [0] * len(compiled.loops)
        self.loop_live: list[set[int]] = [set() for _ in compiled.loops]
        self._touched: set[int] = set()
        self.ready: deque[Activation] = deque()
        self.timers: list[tuple[float, int, Activation]] = []
        self._timer_seq = 0
        self.waiting: dict[ActivationKey, Activation] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.running = 0
        # Latest record of each node, by node index.
        self.latest: list[NodeExecution | None] = [None] * n
        self.end_record: NodeExecution | None = None
        self.failures: list[tuple[CNode, str]] = []
        self.halted = False
        self.stopping = False
        #: Read by `ExecutionContext.cancelled`; written from any thread.
        self.cancel_requested = False
        self.stop_reason = ""
        self.abort: BaseException | None = None
        self.limit_error: tuple[CNode, str] | None = None
        self.seq = 0
        self.extra_listeners = list(listeners)
        self.listeners: list[tuple[str, Callable[[FlowEvent], Any]]] = [
            *runner._listeners(),
            *self.extra_listeners,
        ]
        #: Child flows (sub-graphs) running under this flow's nodes right now.
        self.children: set[FlowRun] = set()
        self.listening = bool(self.listeners)
        self._listener_failed: set[str] = set()
        self._listener_tasks: set[asyncio.Future[Any]] = set()
        self._records_by_key: dict[ActivationKey, NodeExecution] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = 0
        self.driver: asyncio.Task[Any] | None = None
        self._inline_cancellable = False
        self._cancellable: set[asyncio.Task[Any]] = set()
        self._wake: asyncio.Event | None = None
        self.started = time.monotonic()
        self.yield_each_step = False
        #: The flow's status in the store when this run was restored from it.
        self.status_on_load: FlowStatus | None = None

    # -- events ----------------------------------------------------------------

    def emit(self, event: FlowEvent) -> None:
        """Number and timestamp ``event``, then hand it to every listener."""
        self.seq += 1
        event.seq = self.seq
        event.ts = time.time()
        event.parent_flow_id = self.parent_flow_id
        for name, listener in self.listeners:
            try:
                result = listener(event)
                if result is not None and inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._listener_tasks.add(task)
                    task.add_done_callback(self._listener_tasks.discard)
            except Exception:
                if name not in self._listener_failed:
                    self._listener_failed.add(name)
                    logger.exception(
                        "event listener %s failed on %s of flow %s; the flow goes on",
                        name,
                        event.type,
                        self.flow_id,
                    )

    def emit_threadsafe(self, event: FlowEvent) -> None:
        """`emit` from any thread: events from worker threads are handed to the loop's
        thread, in the order they were emitted."""
        if threading.get_ident() == self.loop_thread or self.loop is None:
            self.emit(event)
        else:
            self.loop.call_soon_threadsafe(self.emit, event)

    def emit_token(self, act: Activation, token: str) -> None:
        """Stream a token of ``act``; safe from worker threads. Once a stop is
        requested, tokens are dropped: nobody is to act on them."""
        if not self.listening or self.cancel_requested:
            return
        event = TokenGenerated(flow_id=self.flow_id, node_id=act.node_id, token=token)
        if threading.get_ident() == self.loop_thread or self.loop is None:
            self.emit(event)
        else:
            self.loop.call_soon_threadsafe(self._emit_token_later, event)

    def _emit_token_later(self, event: TokenGenerated) -> None:
        # Queued from a worker thread before a stop was requested: still dropped.
        if not self.cancel_requested:
            self.emit(event)

    # -- what executors read -----------------------------------------------------

    def memory_snapshot(self) -> dict[str, Any]:
        """A copy of flow memory, shared by every context until the next write.

        Only the loop's thread caches it: a worker thread copying while the loop
        commits a write could otherwise cache a copy older than that write.
        """
        snap = self._snapshot
        if snap is None:
            snap = dict(self.memory)
            if threading.get_ident() == self.loop_thread:
                self._snapshot = snap
        return snap

    def input_text(self, act: Activation) -> str:
        sources = act.sources
        if not sources:
            return self.input if act.cnode.is_start else ""
        if len(sources) == 1:
            return sources[0].result or ""
        return "\n".join(s.result for s in sources if s.result)

    def predecessor_outputs(self, act: Activation) -> dict[str, str]:
        by_id = self.cg.by_id
        outputs: dict[str, str] = {}
        for src in act.sources:
            cnode = by_id.get(src.node_id)
            name = cnode.name if cnode is not None and cnode.name else str(src.node_id)
            outputs[name] = src.result or ""
        return outputs

    def _input_parts(
        self, act: Activation
    ) -> tuple[list[Message | MessageLog], list[Message], list[ActivationKey], Message | None]:
        """(parts of the input history, this activation's own messages, history parents,
        the input message)."""
        cnode = act.cnode
        parts: list[Message | MessageLog] = []
        own: list[Message] = []
        parents: list[ActivationKey] = []
        mode = cnode.thought_mode
        if mode != THOUGHT_SKIP:
            if cnode.system_instruction:
                system = Message(MessageRole.SYSTEM, cnode.system_instruction)
                parts.append(system)
                own.append(system)
            if mode == THOUGHT_INHERIT:
                for src in act.sources:
                    last = src.log.last() if src.log is not None else None
                    if last is not None:
                        parts.append(last)
                        own.append(last)
            elif mode == THOUGHT_CONTINUE:
                for src in act.sources:
                    if src.log is not None and src.log.size:
                        parts.append(src.log)
                        parents.append((src.node_id, src.visit))
        answer = act.user_input
        msg_type = cnode.message_type
        pinned: Message | None = None
        if msg_type is not MessageType.AUTOMATIC:
            user_text = answer if answer is not None else self.input
            pinned = input_message(msg_type, cnode.metadata, user_text, self.memory)
            if pinned is not None:
                parts.append(pinned)
                own.append(pinned)
        if answer is not None and msg_type is not MessageType.USER:
            pinned = Message(MessageRole.USER, answer)
            parts.append(pinned)
            own.append(pinned)
        return parts, own, parents, pinned

    def input_messages(self, act: Activation) -> list[Message]:
        """The node's input messages, cut to the context window."""
        parts, _, _, pinned = self._input_parts(act)
        messages = MessageLog(tuple(parts)).to_list()
        node_limit = act.cnode.metadata.get("llm_max_input_tokens")
        return self.context_manager.truncate(
            messages, pinned, max_tokens=int(node_limit) if node_limit else None
        )

    # -- executor lookup -----------------------------------------------------------

    def _executor(self, cnode: CNode) -> tuple[NodeExecutor, bool] | None:
        try:
            return self.executors[cnode.type_name]
        except KeyError:
            executor = self.runner._resolve_executor(cnode.type_name)
            found = None if executor is None else (executor, self.runner._is_async(executor))
            self.executors[cnode.type_name] = found
            return found

    # -- starting and restoring ------------------------------------------------------

    async def start_new(self) -> None:
        """Store the new flow and queue its start node."""
        now = time.time()
        record = FlowRecord(
            flow_id=self.flow_id,
            graph=self.graph,
            input=self.input,
            status=FlowStatus.RUNNING,
            created_at=now,
            updated_at=now,
            parent_flow_id=self.parent_flow_id,
        )
        if self.durable:
            await self.store.call("create_flow", record)
        await self.queue_start()
        if self.listening:
            self.emit(
                FlowStarted(
                    flow_id=self.flow_id,
                    input=self.input,
                    graph_name=self.graph.name,
                )
            )

    async def queue_start(self) -> None:
        """Queue the first visit of the start node."""
        start = self.cg.start
        self.visits[start.idx] = 1
        act = Activation._engine(start.node_id, 1, start, ())
        self._enter_loops(start)
        if self.durable:
            await self.store.commit(self.flow_id, Commit(enqueue=[act]))
        self.ready.append(act)

    @property
    def untouched(self) -> bool:
        """Nothing ever ran or was queued (the process died right after creating it)."""
        return (
            not self.ready
            and not self.timers
            and not self.waiting
            and all(rec is None for rec in self.latest)
        )

    def restore(self, snapshot: FlowSnapshot) -> None:
        """Rebuild this run's state from what the store holds."""
        cg = self.cg
        self.memory = dict(snapshot.memory)
        self.seq = snapshot.flow.event_seq
        by_key = self._records_by_key
        for rec in snapshot.records:
            cnode = cg.by_id.get(rec.node_id)
            if cnode is None:
                raise FlowStateError(
                    f"flow {self.flow_id} has a record of node {rec.node_id}, "
                    "which is not in its graph"
                )
            key = (rec.node_id, rec.visit)
            prev = by_key.get(key)
            if prev is None or rec.attempt >= prev.attempt:
                by_key[key] = rec
            if rec.visit > self.visits[cnode.idx]:
                self.visits[cnode.idx] = rec.visit
            self.latest[cnode.idx] = rec
            if rec.log is None:
                rec.log = self._rebuild_log(rec)
            if cnode.is_end and rec.status is NodeStatus.FINISHED:
                self.end_record = rec
        pending_keys = set()
        now = time.time()
        for act in snapshot.pending:
            cnode = cg.by_id.get(act.node_id)
            if cnode is None:
                raise FlowStateError(f"flow {self.flow_id} queues node {act.node_id}, not in graph")
            act.cnode = cnode
            act.sources = tuple(by_key[k] for k in act.inputs)
            pending_keys.add(act.key)
            if act.visit > self.visits[cnode.idx]:
                self.visits[cnode.idx] = act.visit
            self._enter_loops(cnode)
            if act.waiting:
                self.waiting[act.key] = act
            elif act.not_before > now:
                self._add_timer(act)
            else:
                self.ready.append(act)
        for key, rec in by_key.items():
            if rec.status is NodeStatus.FAILED and key not in pending_keys:
                self.failures.append((cg.by_id[key[0]], rec.error or "failed"))
        slots: dict[tuple[int, int], _JoinSlot] = {}
        for delivery in sorted(snapshot.deliveries, key=lambda d: d.slot):
            target = cg.by_id[delivery.target]
            edge = cg.edge_by_id[delivery.edge]
            slot = slots.get((target.idx, delivery.slot))
            if slot is None:
                slot = slots[(target.idx, delivery.slot)] = _JoinSlot(
                    delivery.slot, target.n_in_fwd
                )
                self.joins.setdefault(target.idx, deque()).append(slot)
                self.slot_seq[target.idx] = max(self.slot_seq.get(target.idx, 0), delivery.slot)
            if slot.got[edge.in_pos] is not _MISSING:
                continue  # a repeated delivery of this edge counts once
            source = None if delivery.source is None else by_key[delivery.source]
            slot.got[edge.in_pos] = source
            slot.count += 1
            if source is not None:
                slot.live += 1
                if not target.await_all:
                    slot.fired = True
        for header_id, edge_id in snapshot.loop_exits:
            loop = cg.loops_by_header[header_id]
            self.loop_live[loop.idx].add(cg.edge_by_id[edge_id].idx)

    def _rebuild_log(self, rec: NodeExecution) -> MessageLog:
        """An activation's history from its own messages and its parents' histories."""
        own = rec.messages
        lead = 0
        while lead < len(own) and own[lead].role is MessageRole.SYSTEM:
            lead += 1
        parent_logs: list[MessageLog] = []
        for key in rec.history_parents:
            parent = self._records_by_key.get(key)
            if parent is not None and parent.log is not None:
                parent_logs.append(parent.log)
        return MessageLog((*own[:lead], *parent_logs, *own[lead:]))

    # -- the loop ------------------------------------------------------------------------

    async def drive(self) -> FlowResult:
        """Run until nothing can run; return the flow's result."""
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.driver = asyncio.current_task()
        try:
            if self.concurrent:
                await self._drive_concurrent()
            else:
                await self._drive_inline()
        except asyncio.CancelledError:
            if not self.stopping:
                # Cancelled from outside (the caller's task, a closed run_async):
                # blocking executors and child flows must hear of it too.
                self.cancel_requested = True
                for child in list(self.children):
                    child.request_stop("the parent flow was cancelled")
                raise
            self._uncancel()
        except Exception as exc:
            self.abort = exc
            self.halted = True
        return await self._finish()

    def _uncancel(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            while task.cancelling():
                task.uncancel()

    def _stop_if_requested(self) -> bool:
        """A stop asked from another thread may not have reached the loop yet."""
        if self.cancel_requested and not self.stopping and not self.halted:
            self.request_stop(self.stop_reason or "stop() called")
        return self.halted

    async def _drive_inline(self) -> None:
        ready = self.ready
        while not self._stop_if_requested():
            if ready:
                await self._run(ready.popleft())
                if self.yield_each_step:
                    # Let a run_async consumer see events while the flow runs.
                    await asyncio.sleep(0)
                continue
            if not self.timers:
                return
            await self._sleep_until_timer()

    async def _sleep_until_timer(self) -> None:
        delay = self.timers[0][0] - time.time()
        if delay > 0:
            self._inline_cancellable = True
            try:
                await asyncio.sleep(delay)
            finally:
                self._inline_cancellable = False
        self._release_due_timers()

    def _release_due_timers(self) -> None:
        now = time.time()
        timers = self.timers
        while timers and timers[0][0] <= now:
            self.ready.append(heapq.heappop(timers)[2])

    def _add_timer(self, act: Activation) -> None:
        self._timer_seq += 1
        heapq.heappush(self.timers, (act.not_before, self._timer_seq, act))

    async def _drive_concurrent(self) -> None:
        wake = self._wake = asyncio.Event()
        limit = self.max_concurrency
        ready = self.ready
        loop = asyncio.get_running_loop()
        while True:
            self._stop_if_requested()
            while ready and not self.halted and (limit is None or self.running < limit):
                act = ready.popleft()
                self.running += 1
                task = loop.create_task(self._run_task(act))
                self.tasks.add(task)
            if self.running == 0 and (self.halted or (not ready and not self.timers)):
                return
            timeout = None
            if self.timers and not self.halted:
                timeout = max(0.0, self.timers[0][0] - time.time())
            if timeout is None:
                await wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout)
            wake.clear()
            self._release_due_timers()

    async def _run_task(self, act: Activation) -> None:
        """Run ``act``, then keep taking ready activations while there are any: a
        chain runs in one task instead of a new task and a driver wake-up per node."""
        ready = self.ready
        wake = self._wake
        try:
            await self._run(act)
            while ready and not self._stop_if_requested():
                nxt = ready.popleft()
                if ready and wake is not None:
                    wake.set()  # more are ready: the driver starts tasks for them
                await self._run(nxt)
        except asyncio.CancelledError:
            if not self.halted:
                raise
        except Exception as exc:
            if self.abort is None:
                self.abort = exc
            self._halt()
        finally:
            self.running -= 1
            task = asyncio.current_task()
            if task is not None:
                self.tasks.discard(task)
                self._cancellable.discard(task)
            if self._wake is not None:
                self._wake.set()

    def _halt(self) -> None:
        """No new activation starts; running executors are cancelled (async ones) or
        told through ``context.cancelled`` (blocking ones)."""
        self.halted = True
        self.cancel_requested = True
        for task in list(self._cancellable):
            task.cancel()
        if self._inline_cancellable and self.driver is not None:
            self.driver.cancel()
        if self._wake is not None:
            self._wake.set()

    def request_stop(self, reason: str = "") -> None:
        """Stop the flow: nothing new starts, running async executors are cancelled,
        blocking ones see ``context.cancelled``. Must run on the flow's loop."""
        self.cancel_requested = True
        if self.stopping:
            return
        self.stopping = True
        self.stop_reason = reason
        for child in list(self.children):
            child.request_stop("the parent flow is stopping")
        self._halt()

    def request_stop_threadsafe(self, reason: str = "") -> None:
        """`request_stop` from any thread. The flag blocking executors poll is set at
        once: a blocking executor may be holding the loop's thread itself."""
        self.cancel_requested = True
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(self.request_stop, reason)

    # -- one activation ---------------------------------------------------------------------

    async def _run(self, act: Activation) -> None:
        cnode: CNode = act.cnode
        if self.listening:
            self.emit(
                NodeStarted(
                    flow_id=self.flow_id,
                    node_id=cnode.node_id,
                    node_type=cnode.node.type,
                    node_name=cnode.name,
                    visit=act.visit,
                    attempt=act.attempt,
                )
            )
        started = time.time()
        input_text = self.input_text(act)
        picked: CEdge | None = None
        try:
            result = await self._call_executor(act, cnode, input_text)
            if result.success and not result.wait_for_user and cnode.out_mode == OUT_PICKED:
                picked = self.cg.pick(cnode, result.picked_node)
                if picked is None:
                    result = NodeResult(success=False, error=self._bad_pick(cnode, result))
        except asyncio.CancelledError:
            if not self.halted:
                raise
            self._uncancel()
            await self._cancelled(act, started)
            return
        except Exception as exc:
            result = NodeResult(success=False, error=_error_text(exc))
        if result.wait_for_user:
            await self._park(act, result, started)
        elif result.success:
            await self._succeed(act, result, started, input_text, picked)
        else:
            await self._fail(act, result, started, input_text)

    async def _call_executor(self, act: Activation, cnode: CNode, input_text: str) -> NodeResult:
        found = self._executor(cnode)
        if found is None:
            raise NodeError(self.runner._missing_executor_message(cnode))
        executor, is_async = found
        ctx = ExecutionContext._for_activation(self, act, input_text)
        timeout = cnode.timeout
        result: Any
        if is_async:
            coro = cast(Awaitable[NodeResult], executor.execute(ctx))
            result = await self._cancellable_await(
                coro if timeout is None else asyncio.wait_for(coro, timeout), cnode, act
            )
        elif timeout is None and not self.offloads_blocking:
            result = executor.execute(ctx)
        else:
            call = BlockingCall(executor, ctx)
            if self.offloads_blocking:
                job = self.dispatcher.run_blocking(call, cnode.node)
            else:
                job = asyncio.to_thread(call)
            result = await self._cancellable_await(
                job if timeout is None else asyncio.wait_for(job, timeout), cnode, act
            )
        if type(result) is not NodeResult:
            return await self._coerce_result(result, cnode)
        return result

    async def _cancellable_await(self, awaitable: Any, cnode: CNode, act: Activation) -> Any:
        """Await an executor call where a stop may cancel it: the activation's own task
        under concurrent dispatchers, the driver itself when running inline."""
        task = asyncio.current_task() if self.concurrent else None
        if task is not None:
            self._cancellable.add(task)
        else:
            self._inline_cancellable = True
        try:
            return await awaitable
        except TimeoutError as exc:
            if isinstance(exc, NodeError):
                raise
            raise NodeTimeoutError(self._timeout_message(cnode, act)) from None
        finally:
            if task is not None:
                self._cancellable.discard(task)
            else:
                self._inline_cancellable = False

    def _timeout_message(self, cnode: CNode, act: Activation) -> str:
        total = 1 + cnode.max_retries
        return (
            f"node {cnode.describe()} timed out after {_fmt_seconds(cnode.timeout or 0)} s "
            f"(attempt {act.attempt} of {total})"
        )

    async def _coerce_result(self, result: Any, cnode: CNode) -> NodeResult:
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, NodeResult):
            return result
        if isinstance(result, str):
            return NodeResult(success=True, output_text=result)
        raise NodeError(
            f"the executor of node {cnode.describe()} returned {type(result).__name__}; "
            "expected a NodeResult or a str"
        )

    def _bad_pick(self, cnode: CNode, result: NodeResult) -> str:
        choices = ", ".join(repr(c) for c in self.cg.choices(cnode)) or "(no outgoing edges)"
        if not result.picked_node:
            return f"node {cnode.describe()} picked no branch; valid choices: {choices}"
        return (
            f"node {cnode.describe()} picked {result.picked_node!r}, which matches no branch; "
            f"valid choices: {choices}"
        )

    def _record(
        self,
        act: Activation,
        status: NodeStatus,
        started: float,
        result: str | None,
        data: dict[str, Any],
        error: str | None,
    ) -> NodeExecution:
        return NodeExecution._engine(
            act.node_id,
            status,
            act.visit,
            act.attempt,
            result,
            error,
            data,
            started,
            time.time(),
            act.sources,
            act.user_input,
        )

    def _history(self, act: Activation, rec: NodeExecution, with_output: bool) -> None:
        """Attach the activation's input history parts to its record. The start node's
        output is the person's input, so it enters histories as a user message."""
        role = None
        if with_output:
            role = MessageRole.USER if act.cnode.is_start else MessageRole.ASSISTANT
        if act.cnode.plain_input and act.user_input is None:
            rec._set_history((), (), role)
            return
        parts, _, parents, _ = self._input_parts(act)
        rec._set_history(tuple(parts), tuple(parents), role)

    async def _commit(self, commit: Commit) -> None:
        if self.commit_sync:
            self._commit_now(commit)
            return
        if not self.durable:
            await self._legacy_commit(commit)
            return
        try:
            await self.store.commit(self.flow_id, commit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._store_failure(exc, commit) from exc

    def _commit_now(self, commit: Commit) -> None:
        try:
            self.store.commit_now(self.flow_id, commit)
        except Exception as exc:
            raise self._store_failure(exc, commit) from exc

    def _store_failure(
        self, exc: Exception, commit: Commit
    ) -> StoreUnavailableError | UnstorableOutputError:
        store = self.runner._store_name()
        if isinstance(exc, StoreDataError) and commit.record is not None:
            cnode = self.cg.by_id.get(commit.record.node_id)
            node = cnode.describe() if cnode is not None else str(commit.record.node_id)
            return UnstorableOutputError(
                f"node {node} produced data the store ({store}) cannot save: {exc}"
            )
        return StoreUnavailableError(
            f"the store ({store}) failed while committing flow {self.flow_id}: {_error_text(exc)}"
        )

    async def _legacy_commit(self, commit: Commit) -> None:
        """0.1.5-contract stores: write the record, memory and history node by node."""
        rec = commit.record
        store = self.store
        if rec is not None:
            await store.call("save_node_execution", self.flow_id, rec.node_id, rec)
            if rec.log is not None:
                await store.call("save_messages", self.flow_id, rec.node_id, rec.log.to_list())
        if commit.memory:
            for key, value in commit.memory.items():
                await store.call("save_memory", self.flow_id, key, value)

    async def _succeed(
        self,
        act: Activation,
        result: NodeResult,
        started: float,
        input_text: str,
        picked: CEdge | None,
    ) -> None:
        cnode: CNode = act.cnode
        output = result.output_text
        rec = self._record(act, NodeStatus.FINISHED, started, output, result.data, None)
        self._history(act, rec, bool(output))
        memory = result.data.get("memory_updates") if result.data else None
        if memory is not None and not isinstance(memory, dict):
            await self._fail(
                act,
                NodeResult(
                    success=False,
                    error=(
                        f"node {cnode.describe()} returned memory_updates of type "
                        f"{type(memory).__name__}; expected a dict"
                    ),
                ),
                started,
                input_text,
            )
            return
        commit = Commit((act.node_id, act.visit), rec, memory or None)
        self._route(cnode, rec, commit, picked)
        if self.commit_sync:
            self._apply_now(cnode, rec, commit)
        else:
            await self._apply(cnode, rec, commit)
        if self.listening:
            self.emit(
                NodeFinished(
                    flow_id=self.flow_id,
                    node_id=cnode.node_id,
                    result=output or "",
                    output_data=result.data,
                    node_name=cnode.name,
                    visit=act.visit,
                )
            )
        self._after_limit_check()

    async def _apply(self, cnode: CNode, rec: NodeExecution, commit: Commit) -> None:
        """Commit, then make the commit's effects visible to this run."""
        if cnode.loops:
            self._leave_loops(cnode)
        if self._touched:
            self._resolve_loops(commit)
        await self._commit(commit)
        self._applied(cnode, rec, commit)

    def _apply_now(self, cnode: CNode, rec: NodeExecution, commit: Commit) -> None:
        """`_apply` for stores whose commit never suspends: no coroutine on the hot path."""
        if cnode.loops:
            self._leave_loops(cnode)
        if self._touched:
            self._resolve_loops(commit)
        self._commit_now(commit)
        self._applied(cnode, rec, commit)

    def _applied(self, cnode: CNode, rec: NodeExecution, commit: Commit) -> None:
        if commit.memory:
            self.memory.update(commit.memory)
            self._snapshot = None
        self.latest[cnode.idx] = rec
        if cnode.is_end and rec.status is NodeStatus.FINISHED:
            self.end_record = rec
        for new in commit.enqueue:
            if new.not_before:
                self._add_timer(new)
            else:
                self.ready.append(new)

    async def _park(self, act: Activation, result: NodeResult, started: float) -> None:
        cnode: CNode = act.cnode
        rec = self._record(
            act, NodeStatus.WAITING_USER, started, result.output_text, result.data, None
        )
        act.waiting = True
        act.prompt = result.user_prompt or ""
        act.options = list(result.user_options) if result.user_options else None
        act.user_input = None
        await self._commit(Commit(record=rec, enqueue=[act]))
        self.latest[cnode.idx] = rec
        self.waiting[act.key] = act
        if self.listening:
            self.emit(
                UserInputRequired(
                    flow_id=self.flow_id,
                    node_id=cnode.node_id,
                    prompt=act.prompt,
                    options=list(act.options or ()),
                    node_name=cnode.name,
                )
            )

    async def _cancelled(self, act: Activation, started: float) -> None:
        rec = self._record(act, NodeStatus.CANCELLED, started, None, {}, "cancelled: flow stopping")
        self.latest[act.cnode.idx] = rec
        if self.durable and self.abort is None:
            try:
                await self._commit(Commit(record=rec))
            except StoreUnavailableError as exc:
                self.abort = exc

    async def _fail(
        self, act: Activation, result: NodeResult, started: float, input_text: str
    ) -> None:
        cnode: CNode = act.cnode
        error = result.error or f"node {cnode.describe()} reported a failure"
        if cnode.error_mode is ErrorStrategy.RETRY and act.attempt <= cnode.max_retries:
            await self._retry(act, error, started, result)
            return
        strategy = cnode.error_mode
        if strategy in (ErrorStrategy.SKIP, ErrorStrategy.CONTINUE):
            skipped = strategy is ErrorStrategy.SKIP
            status = NodeStatus.SKIPPED if skipped else NodeStatus.FAILED
            # The node's input passes through to its successors.
            rec = self._record(act, status, started, input_text, result.data, error)
            self._history(act, rec, False)
            commit = Commit(done=act.key, record=rec)
            self._route(cnode, rec, commit, None, failed=True)
            if not skipped:
                self.failures.append((cnode, error))
            await self._apply(cnode, rec, commit)
            if skipped and self.listening:
                self.emit(
                    NodeSkipped(
                        flow_id=self.flow_id,
                        node_id=cnode.node_id,
                        node_name=cnode.name,
                        error=error,
                    )
                )
            self._flow_error(cnode, error, recoverable=True)
            self._after_limit_check()
            return
        # STOP, CUSTOM, and RETRY once attempts are used up: the flow halts.
        rec = self._record(act, NodeStatus.FAILED, started, None, result.data, error)
        self.failures.append((cnode, error))
        self._halt()
        self._leave_loops(cnode)
        await self._commit(Commit(done=act.key, record=rec))
        self.latest[cnode.idx] = rec
        self._flow_error(cnode, error, recoverable=False)

    async def _retry(self, act: Activation, error: str, started: float, result: NodeResult) -> None:
        cnode: CNode = act.cnode
        delay = cnode.retry_delay * (2 ** (act.attempt - 1))
        rec = self._record(act, NodeStatus.FAILED, started, None, result.data, error)
        nxt = Activation(
            act.node_id,
            act.visit,
            act.attempt + 1,
            act.inputs,
            not_before=time.time() + delay,
            user_input=act.user_input,
        )
        nxt.cnode = cnode
        nxt.sources = act.sources
        commit = Commit(done=act.key, record=rec, enqueue=[nxt])
        await self._commit(commit)
        self.latest[cnode.idx] = rec
        if self.listening:
            self.emit(
                NodeRetrying(
                    flow_id=self.flow_id,
                    node_id=cnode.node_id,
                    node_name=cnode.name,
                    attempt=act.attempt,
                    next_attempt=nxt.attempt,
                    delay=delay,
                    error=error,
                )
            )
        if delay > 0:
            self._add_timer(nxt)
        else:
            nxt.not_before = 0.0
            self.ready.append(nxt)

    # -- routing: deliveries, joins, dead paths, loops ------------------------------------------

    def _route(
        self,
        cnode: CNode,
        rec: NodeExecution,
        commit: Commit,
        picked: CEdge | None,
        *,
        failed: bool = False,
    ) -> None:
        mode = cnode.out_mode
        dead: list[CEdge] = []
        if mode == OUT_ALL:
            for edge in cnode.out_edges:
                self._deliver(edge, rec, commit, dead)
        elif mode == OUT_PICKED:
            # A failed decision (SKIP/CONTINUE) has no answer: every branch is dead.
            for edge in cnode.out_edges:
                if edge is picked and not failed:
                    self._deliver(edge, rec, commit, dead)
                elif not edge.back:
                    dead.append(edge)
        elif mode == OUT_START:
            dead.extend(e for e in cnode.out_edges if not e.back)
            self._deliver(self.cg.start_edges[cnode.idx], rec, commit, dead)
        elif mode == OUT_NONE:
            dead.extend(e for e in cnode.out_edges if not e.back)
        if dead:
            self._propagate_dead(dead, commit)

    def _deliver(self, edge: CEdge, rec: NodeExecution, commit: Commit, dead: list[CEdge]) -> None:
        """A live delivery along ``edge``."""
        target = edge.target
        if edge.back:
            self._fire(target, (rec,), commit)
            return
        exit_loop = edge.exit_loop
        if exit_loop is not None:
            live = self.loop_live[exit_loop.idx]
            if edge.idx not in live:
                live.add(edge.idx)
                commit.add_loop_exit(exit_loop.header.node_id, edge.id)
        if target.n_in_fwd == 1:
            self._fire(target, (rec,), commit)
            return
        slot = self._slot_for(target, edge)
        slot.got[edge.in_pos] = rec
        slot.count += 1
        slot.live += 1
        commit.add_delivery(Delivery(target.node_id, slot.no, edge.id, (rec.node_id, rec.visit)))
        if target.await_all:
            if slot.count == target.n_in_fwd:
                self._close(target, slot, commit)
                self._fire(target, tuple(r for r in slot.got if r is not None), commit)
        else:
            if not slot.fired:
                slot.fired = True
                self._fire(target, (rec,), commit)
            if slot.count == target.n_in_fwd:
                self._close(target, slot, commit)

    def _propagate_dead(
        self, edges: list[CEdge], commit: Commit, *, resolving: bool = False
    ) -> None:
        """Dead signals along ``edges`` and onward, iteratively (chains can be long)."""
        work = list(edges)
        while work:
            edge = work.pop()
            if edge.back:
                continue
            if edge.exit_loop is not None and not resolving:
                continue  # held until the loop has nothing in flight
            resolving = False  # only the resolved exit edges themselves bypass the hold
            target = edge.target
            if target.n_in_fwd == 1:
                self._kill(target, work)
                continue
            slot = self._slot_for(target, edge)
            slot.got[edge.in_pos] = _DEAD
            slot.count += 1
            commit.add_delivery(Delivery(target.node_id, slot.no, edge.id, None))
            if slot.count == target.n_in_fwd:
                self._close(target, slot, commit)
                if slot.live == 0:
                    self._kill(target, work)
                elif target.await_all:
                    # The last edge is dead but others delivered: fire with those.
                    self._fire(target, tuple(r for r in slot.got if r is not None), commit)

    def _kill(self, cnode: CNode, work: list[CEdge]) -> None:
        """A node that will not run this visit: its successors hear it will not deliver."""
        if self.listening:
            self.emit(NodeDead(flow_id=self.flow_id, node_id=cnode.node_id, node_name=cnode.name))
        for loop in cnode.loops:
            self._touched.add(loop.idx)
        work.extend(e for e in cnode.out_edges if not e.back)

    def _slot_for(self, target: CNode, edge: CEdge) -> _JoinSlot:
        slots = self.joins.get(target.idx)
        if slots is None:
            slots = self.joins[target.idx] = deque()
        pos = edge.in_pos
        for slot in slots:
            if slot.got[pos] is _MISSING:
                return slot
        no = self.slot_seq[target.idx] = self.slot_seq.get(target.idx, 0) + 1
        slot = _JoinSlot(no, target.n_in_fwd)
        slots.append(slot)
        return slot

    def _close(self, target: CNode, slot: _JoinSlot, commit: Commit) -> None:
        slots = self.joins[target.idx]
        slots.remove(slot)
        if not slots:
            del self.joins[target.idx]
        commit.add_closed(target.node_id, slot.no)

    def _fire(self, cnode: CNode, sources: tuple[NodeExecution, ...], commit: Commit) -> None:
        visit = self.visits[cnode.idx] + 1
        limit = cnode.max_visits if cnode.max_visits is not None else self.max_visits
        if limit is not None and visit > limit:
            if self.limit_error is None:
                self.limit_error = (
                    cnode,
                    f"node {cnode.describe()} exceeded its visit limit of {limit}",
                )
            return
        self.visits[cnode.idx] = visit
        if cnode.loops:
            self._enter_loops(cnode)
        commit.add_enqueue(Activation._engine(cnode.node_id, visit, cnode, sources))

    def _enter_loops(self, cnode: CNode) -> None:
        for loop in cnode.loops:
            self.loop_active[loop.idx] += 1

    def _leave_loops(self, cnode: CNode) -> None:
        for loop in cnode.loops:
            self.loop_active[loop.idx] -= 1
            self._touched.add(loop.idx)

    def _resolve_loops(self, commit: Commit) -> None:
        """Loops with nothing left in flight: their untaken exits are dead now."""
        touched = self._touched
        while touched:
            loop = self.cg.loops[touched.pop()]
            if self.loop_active[loop.idx]:
                continue
            live = self.loop_live[loop.idx]
            untaken = [e for e in loop.exits if e.idx not in live]
            live.clear()
            commit.add_loop_reset(loop.header.node_id)
            for edge in untaken:
                self._propagate_dead([edge], commit, resolving=True)

    def _flow_error(self, cnode: CNode, error: str, *, recoverable: bool) -> None:
        """The one FlowError of a final failure."""
        if self.listening:
            self.emit(
                FlowError(
                    flow_id=self.flow_id,
                    node_id=cnode.node_id,
                    error=error,
                    recoverable=recoverable,
                    node_name=cnode.name,
                )
            )

    def _after_limit_check(self) -> None:
        if self.limit_error is not None and not self.halted:
            cnode, error = self.limit_error
            self.failures.append((cnode, error))
            self._halt()
            self._flow_error(cnode, error, recoverable=False)

    # -- the end ----------------------------------------------------------------------------

    def _stalled_joins(self) -> str | None:
        for idx, slots in self.joins.items():
            target = self.cg.nodes[idx]
            for slot in slots:
                if target.await_all and slot.live and not slot.fired:
                    missing = [
                        e.source.name or str(e.source.node_id)
                        for e in target.in_fwd
                        if slot.got[e.in_pos] is _MISSING
                    ]
                    got = [
                        e.source.name or str(e.source.node_id)
                        for e in target.in_fwd
                        if slot.got[e.in_pos] is not _MISSING
                    ]
                    return (
                        f"node {target.describe()} waited for all its inputs: "
                        f"{', '.join(got)} delivered but {', '.join(missing)} never did"
                    )
        return None

    async def _finish(self) -> FlowResult:
        error: str | None = None
        if self.abort is not None:
            status = FlowStatus.FAILED
            error = str(self.abort)
        elif self.stopping:
            status = FlowStatus.STOPPED
        elif self.failures:
            status = FlowStatus.FAILED
            error = self.describe_failure()
        elif self.waiting:
            status = FlowStatus.PAUSED
        else:
            stalled = self._stalled_joins()
            if stalled is not None:
                status = FlowStatus.FAILED
                error = stalled
            else:
                status = FlowStatus.COMPLETED
        end = self.end_record
        final_output = (end.result or "") if end is not None else ""
        output_data = end.output_data if end is not None else {}
        if self.listening:
            if status is FlowStatus.STOPPED:
                self.emit(FlowStopped(flow_id=self.flow_id, reason=self.stop_reason))
            elif status is FlowStatus.PAUSED:
                self.emit(FlowPaused(flow_id=self.flow_id, waiting=[k[0] for k in self.waiting]))
            elif self.abort is None:
                self.emit(
                    FlowFinished(
                        flow_id=self.flow_id,
                        final_output=final_output,
                        output_data=output_data,
                        status=status.value,
                        success=status is FlowStatus.COMPLETED,
                        error=error,
                    )
                )
        # A store outage leaves the flow running for recover(); unstorable output
        # would fail the same way again, so that flow is recorded as failed.
        if self.durable and (self.abort is None or isinstance(self.abort, UnstorableOutputError)):
            update = FlowUpdate(
                status=status,
                updated_at=time.time(),
                error=error,
                final_output=final_output if status.is_terminal else None,
                event_seq=self.seq,
            )
            try:
                await self.store.call("update_flow", self.flow_id, update)
            except Exception as exc:
                error = (
                    f"the store ({self.runner._store_name()}) failed while recording the end of "
                    f"flow {self.flow_id}: {_error_text(exc)}"
                )
                status = FlowStatus.FAILED
        return FlowResult(
            flow_id=self.flow_id,
            success=status is FlowStatus.COMPLETED,
            final_output=final_output,
            output_data=output_data,
            error=error,
            node_results=NodeResults(self.latest),
            duration_seconds=time.monotonic() - self.started,
            status=status,
            waiting=self.waiting_nodes(),
        )

    def describe_failure(self) -> str | None:
        """The first final failure, naming its node; None if no node failed."""
        if not self.failures:
            return None
        cnode, message = self.failures[0]
        return message if cnode.describe() in message else f"node {cnode.describe()}: {message}"

    def waiting_nodes(self) -> list[WaitingNode]:
        return [
            WaitingNode(
                node_id=act.node_id,
                node_name=act.cnode.name,
                prompt=act.prompt,
                options=list(act.options or ()),
                visit=act.visit,
            )
            for act in self.waiting.values()
        ]

    # -- resume ------------------------------------------------------------------------------

    async def answer(self, user_input: str, node: UUID | str | None) -> None:
        """Give ``user_input`` to a waiting node and queue it to run again."""
        act = self._find_waiting(node)
        del self.waiting[act.key]
        act.waiting = False
        act.user_input = user_input
        if self.durable:
            await self._commit(Commit(enqueue=[act]))
            await self.store.call(
                "update_flow",
                self.flow_id,
                FlowUpdate(status=FlowStatus.RUNNING, updated_at=time.time(), event_seq=self.seq),
            )
        if self.listening:
            self.emit(
                FlowResumed(
                    flow_id=self.flow_id,
                    reason="resume",
                    node_id=act.node_id,
                    graph_name=self.graph.name,
                )
            )
        self.ready.append(act)

    def _find_waiting(self, node: UUID | str | None) -> Activation:
        if not self.waiting:
            raise FlowStateError(f"flow {self.flow_id} has no node waiting for input")
        if node is None:
            return next(iter(self.waiting.values()))
        for act in self.waiting.values():
            if act.node_id == node or act.cnode.name == node or str(act.node_id) == node:
                return act
        names = ", ".join(a.cnode.describe() for a in self.waiting.values())
        raise FlowStateError(
            f"node {node!r} of flow {self.flow_id} is not waiting for input; waiting: {names}"
        )

"""Calling a node's executor: async or blocking, with its timeout, under stop.

Async executors run on the flow's loop. A blocking (plain ``def``) executor runs
inline under the sync dispatcher when it has no timeout; otherwise it goes to
the dispatcher's ``run_blocking`` (concurrent dispatchers) or a daemon thread,
so that a timeout or a stop does not wait for it (an abandoned call runs on in
its thread, its result dropped, and never keeps the process alive). Whatever an executor returns
is turned into a `NodeResult` or a named node error. An activation with limited keys
holds a slot of each while its executor runs (`key_limits`), given back by the
activation's commit once the executor returned (`Committer.hand_over`); with a key limiting
tokens, or with a key budget (`key_budgets`), the outcomes count each record's
usage with its commit (`usage_counts`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast

from quartermaster_engine.context.current_context import CURRENT
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.dispatchers.base import BlockingCall, TaskDispatcher
from quartermaster_engine.dispatchers.daemon_threads import run_in_daemon_thread
from quartermaster_engine.nodes import NodeExecutor, NodeResult
from quartermaster_engine.runner.compiled import CNode
from quartermaster_engine.runner.control import RunControl
from quartermaster_engine.runner.errors import NodeError, NodeTimeoutError, fmt_seconds
from quartermaster_engine.runner.map_state import item_memory
from quartermaster_engine.runner.results import checked, coerce
from quartermaster_engine.stores.records import Activation

if TYPE_CHECKING:
    from quartermaster_engine.runner.flow_run import FlowRun
    from quartermaster_engine.runner.host import RunHost


class ExecutorCaller:
    """Runs executors for one flow."""

    __slots__ = (
        "_cache",
        "_host",
        "control",
        "counts_usage",
        "dispatcher",
        "gated",
        "key_budgets",
        "offloads_blocking",
        "token_limits",
    )

    def __init__(self, host: RunHost, control: RunControl) -> None:
        # (The host, not its bound methods: two objects fewer per flow in flight.)
        self._host = host
        self.dispatcher: TaskDispatcher = host.dispatcher
        self.control = control
        #: Blocking executors run off the loop (checked once by the host).
        self.offloads_blocking = host.offloads_blocking
        self._cache: dict[str, tuple[NodeExecutor, bool] | None] = {}
        limits = host.key_limits
        #: The engine's key limits when one limits tokens (else None: nothing counted).
        self.token_limits = limits if limits is not None and limits.counts_tokens else None
        #: The engine's budgets per key (else None: nothing counted or checked for keys).
        self.key_budgets = host.key_budgets
        #: Whether records are counted with their commits (`usage_counts`).
        self.counts_usage = self.token_limits is not None or self.key_budgets is not None
        #: Whether activations pass the budget gate (flow or key budgets are set).
        self.gated = host.budgets is not None

    def executor(self, cnode: CNode) -> tuple[NodeExecutor, bool] | None:
        try:
            return self._cache[cnode.type_name]
        except KeyError:
            found = self._cache[cnode.type_name] = self._host.executor_for(cnode.type_name)
            return found

    async def call(
        self, run: FlowRun, act: Activation, input_text: str, *, keys_held: bool = False
    ) -> NodeResult:
        """Run ``act``'s executor and return its result (raises on failure);
        ``keys_held``: the slots of its limited keys are taken already."""
        cnode: CNode = act.cnode
        found = self.executor(cnode)
        if found is None:
            raise NodeError(self._host.missing_executor_message(cnode))
        executor, is_async = found
        limits = run.host.key_limits
        if limits is not None and not keys_held:
            keys = limits.keys_of(cnode, executor, run.graph)
            if keys:  # a slot of each limited key while the executor runs
                async with limits.held(keys) as slots:
                    # (Called again rather than split: no extra call per activation.)
                    done = await ExecutorCaller.call(self, run, act, input_text, keys_held=True)
                    run.committer.hand_over(act.key, slots)  # its commit gives them back
                    return done
        ctx = ExecutionContext._for_activation(run.view, act, input_text)
        if cnode.item_of is not None:  # a map's item: ``item`` and ``index`` in memory
            ctx.memory = item_memory(run.state, act)
        timeout = cnode.timeout
        result: Any
        if not is_async and timeout is None and not self.offloads_blocking:
            token = CURRENT.set(ctx)  # what BlockingCall does, without building one
            try:
                result = executor.execute(ctx)
            finally:
                CURRENT.reset(token)
        else:
            # Awaited here, not in helper coroutines: every frame is kept per flow in flight.
            token = CURRENT.set(ctx)  # bound in this activation's task; a wait_for task copies it
            control = self.control
            guarded = control.guard()
            try:
                if is_async:
                    job = cast(Awaitable[NodeResult], executor.execute(ctx))
                elif self.offloads_blocking:
                    job = self.dispatcher.run_blocking(BlockingCall(executor, ctx), cnode.node)
                else:
                    job = run_in_daemon_thread(BlockingCall(executor, ctx))
                result = await (job if timeout is None else asyncio.wait_for(job, timeout))
            except TimeoutError as exc:
                if isinstance(exc, NodeError):
                    raise
                raise NodeTimeoutError(timeout_message(cnode, act)) from None
            finally:
                control.unguard(guarded)
                CURRENT.reset(token)
        if type(result) is not NodeResult:
            return await coerce(result, cnode)
        return checked(result, cnode)


def timeout_message(cnode: CNode, act: Activation) -> str:
    total = 1 + cnode.max_retries
    return (
        f"node {cnode.describe()} timed out after {fmt_seconds(cnode.timeout or 0)} s "
        f"(attempt {act.attempt} of {total})"
    )

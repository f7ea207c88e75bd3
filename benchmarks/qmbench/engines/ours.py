"""The workloads on our engine (``/work/main/.venv``)."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from pathlib import Path
from typing import Any

from qmbench import qm_graphs
from qmbench.checks import JOIN, EngineFailed, check_chain, check_equal, check_fanout
from qmbench.measure import NotInstalled
from qmbench.spec import CONCURRENT, FANOUT, FLOW_CHAIN, INPUT
from quartermaster_engine import (
    AsyncDispatcher,
    ExecutionContext,
    FlowResult,
    FlowRunner,
    FlowStatus,
    InMemoryStore,
    NodeResult,
    SimpleNodeRegistry,
    SyncDispatcher,
)
from quartermaster_engine._sync import run_sync  # to close async stores on the loop they used


def _import_attr(module: str, name: str, what: str) -> Any:
    """``module.name``, or `NotInstalled` saying which package is missing."""
    try:
        mod = __import__(module, fromlist=[name])
    except ImportError as exc:
        raise NotInstalled(f"{module} is not installed ({exc})") from None
    attr = getattr(mod, name, None)
    if attr is None:
        raise NotInstalled(f"{module} has no {name} yet ({what})")
    return attr


class OursBench:
    """A workload on `FlowRunner` with the store and dispatcher of ``variant``."""

    def __init__(
        self, workload: str, variant: str, size: int, params: dict[str, Any], workdir: Path
    ) -> None:
        self.workload = workload
        self.variant = variant
        self.size = size
        self.params = params
        self.workdir = workdir
        self.calls: list[str] = []
        self.join_inputs: list[int] = []
        self.fanout = workload in FANOUT
        self.store: Any = None
        self.dispatcher: Any = None
        self.runner: FlowRunner | None = None
        self._sleep_s = float(params.get("sleep_s", 0.0))
        self._last: list[FlowResult] = []

    # -- the executors: record the node, pass the input on -------------------------

    def _noop(self, ctx: ExecutionContext) -> NodeResult:
        self.calls.append(ctx.current_node.name)
        return NodeResult(output_text=ctx.input_text)

    def _sleep(self, ctx: ExecutionContext) -> NodeResult:
        time.sleep(self._sleep_s)
        self.calls.append(ctx.current_node.name)
        return NodeResult(output_text=ctx.input_text)

    async def _await_sleep(self, ctx: ExecutionContext) -> NodeResult:
        await asyncio.sleep(self._sleep_s)
        self.calls.append(ctx.current_node.name)
        return NodeResult(output_text=ctx.input_text)

    def _join(self, ctx: ExecutionContext) -> NodeResult:
        self.calls.append(JOIN)
        self.join_inputs.append(len(ctx.predecessor_outputs))
        return NodeResult(output_text=ctx.input_text)

    # -- the parts each variant uses ------------------------------------------------

    def _make_store(self) -> Any:
        if self.variant.startswith("ours-sqlite"):
            cls = _import_attr("qm_store_sqlite", "SQLiteStore", "issue 6")
            if self.variant == "ours-sqlite-full":
                return cls(path=self.workdir / "ours.db", synchronous="FULL")
            return cls(path=self.workdir / "ours.db")
        if self.variant == "ours-redis":
            cls = _import_attr("qm_store_redis", "RedisStore", "issue 7")
            return cls(url=self.params["redis_url"])
        if self.variant == "ours-postgres":
            cls = _import_attr("qm_store_postgres", "PostgresStore", "issue 17")
            return cls(self.params["postgres_dsn"], schema_name=f"qm_cell_{os.getpid()}")
        return InMemoryStore()

    def _make_dispatcher(self) -> Any:
        if self.variant == "ours-thread":
            cls = _import_attr("qm_dispatch_thread", "ThreadDispatcher", "issue 8")
            return cls(max_workers=32)
        if self.variant == "ours-async":
            return AsyncDispatcher()
        return SyncDispatcher()

    # -- Bench -----------------------------------------------------------------------

    def setup(self) -> None:
        if self.workload == "W4":
            graph = qm_graphs.chain(FLOW_CHAIN)
        elif self.workload == CONCURRENT:
            graph = qm_graphs.chain(1)
        elif self.fanout:
            graph = qm_graphs.fanout(self.size)
        else:
            graph = qm_graphs.chain(self.size)
        branch: Any = self._noop
        if self.workload == "W6":
            branch = self._sleep
        elif self.workload == CONCURRENT:
            branch = self._await_sleep
        registry = SimpleNodeRegistry(
            {qm_graphs.NOOP_TYPE: branch, qm_graphs.JOIN_TYPE: self._join}
        )
        self.store = self._make_store()
        self.dispatcher = self._make_dispatcher()
        self.runner = FlowRunner(graph, registry, store=self.store, dispatcher=self.dispatcher)

    def run(self) -> list[FlowResult]:
        assert self.runner is not None
        run = self.runner.run
        if self.workload == "W4":
            return [run(INPUT) for _ in range(self.size)]
        if self.workload == CONCURRENT:
            return asyncio.run(self._concurrent())
        return [run(INPUT)]

    async def _concurrent(self) -> list[FlowResult]:
        assert self.runner is not None
        arun = self.runner.arun
        return list(await asyncio.gather(*(arun(INPUT) for _ in range(self.size))))

    def check(self, outcome: list[FlowResult]) -> None:
        for result in outcome:
            if result.status is not FlowStatus.COMPLETED or not result.success:
                raise EngineFailed(f"flow {result.status.value}: {result.error}")
        if self.workload == CONCURRENT:
            check_chain(self.calls, 1, flows=self.size)
            for result in outcome:
                check_equal("final_output", result.final_output, INPUT)
        elif self.workload == "W4":
            check_chain(self.calls, FLOW_CHAIN, flows=self.size)
            for result in outcome:
                check_equal("final_output", result.final_output, INPUT)
        elif self.fanout:
            check_fanout(self.calls, self.size)
            check_equal("inputs the join received", self.join_inputs, [self.size])
            check_equal("final_output", outcome[0].final_output, "\n".join([INPUT] * self.size))
        else:
            check_chain(self.calls, self.size)
            check_equal("final_output", outcome[0].final_output, INPUT)
        self._last = outcome

    def reset(self) -> None:
        self.calls.clear()
        self.join_inputs.clear()
        # In memory, each run starts from an empty store so the peak is one run's;
        # durable stores keep their flows, as a real file or server would.
        if isinstance(self.store, InMemoryStore):
            for result in self._last:
                self.store.delete_flow(result.flow_id)
        self._last = []

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.shutdown(wait=True)
        for name in ("aclose", "close"):
            close = getattr(self.store, name, None)
            if callable(close):
                result = close()
                if inspect.iscoroutine(result):
                    run_sync(result)
                break


def make(
    workload: str, variant: str, size: int, params: dict[str, Any], workdir: Path
) -> OursBench:
    """The bench for one cell on our engine."""
    return OursBench(workload, variant, size, params, workdir)

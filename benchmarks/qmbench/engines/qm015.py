"""The workloads on quartermaster-engine 0.1.5 (``.bench/qm015``).

0.1.5 runs every executor through ``asyncio.run``, so its executors must be
``async def``; it gives them no input text, so the no-op returns the flow
input as a constant. Its runner catches exceptions (RecursionError included)
and returns them as a failed `FlowResult`, which is recorded as a crash.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from qmbench import qm_graphs
from qmbench.checks import JOIN, EngineFailed, check_chain, check_equal, check_fanout
from qmbench.spec import FANOUT, FLOW_CHAIN, INPUT
from quartermaster_engine import (
    FlowResult,
    FlowRunner,
    InMemoryStore,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.dispatchers import SyncDispatcher, ThreadDispatcher
from quartermaster_engine.stores.sqlite_store import SQLiteStore

# 0.1.5 logs each failed flow's whole traceback (a RecursionError's is thousands of
# lines); the failure still comes back in FlowResult.error, which is what we record.
logging.getLogger("quartermaster_engine").setLevel(logging.CRITICAL)


class Qm015Bench:
    """A workload on 0.1.5's `FlowRunner` with the store and dispatcher of ``variant``."""

    def __init__(
        self, workload: str, variant: str, size: int, params: dict[str, Any], workdir: Path
    ) -> None:
        self.workload = workload
        self.variant = variant
        self.size = size
        self.workdir = workdir
        self.calls: list[str] = []
        self.fanout = workload in FANOUT
        self.sleep_s = float(params.get("sleep_s", 0.0))
        self.store: Any = None
        self.dispatcher: Any = None
        self.runner: Any = None
        self._last: list[FlowResult] = []

    def _executors(self) -> tuple[Any, Any]:
        calls = self.calls
        sleep_s = self.sleep_s

        class Noop:
            async def execute(self, context: Any) -> NodeResult:
                if sleep_s:
                    time.sleep(sleep_s)  # noqa: ASYNC251 - W6 measures blocking executors
                calls.append(context.current_node.name)
                return NodeResult(success=True, data={}, output_text=INPUT)

        class Join:
            async def execute(self, context: Any) -> NodeResult:
                calls.append(JOIN)
                return NodeResult(success=True, data={}, output_text=INPUT)

        return Noop(), Join()

    def setup(self) -> None:
        if self.workload == "W4":
            graph = qm_graphs.chain(FLOW_CHAIN)
        elif self.fanout:
            graph = qm_graphs.fanout(self.size)
        else:
            graph = qm_graphs.chain(self.size)
        noop, join = self._executors()
        registry = SimpleNodeRegistry()
        registry.register(qm_graphs.NOOP_TYPE, noop)
        registry.register(qm_graphs.JOIN_TYPE, join)
        if self.variant.startswith("qm015-sqlite"):
            self.store = SQLiteStore(db_path=self.workdir / "qm015.db")
        else:
            self.store = InMemoryStore()
        if self.variant == "qm015-thread32":
            self.dispatcher = ThreadDispatcher(max_workers=32)
        elif self.variant.endswith("thread"):
            self.dispatcher = ThreadDispatcher()
        else:
            self.dispatcher = SyncDispatcher()
        self.runner = FlowRunner(graph, registry, store=self.store, dispatcher=self.dispatcher)

    def run(self) -> list[FlowResult]:
        run = self.runner.run
        if self.workload == "W4":
            return [run(INPUT) for _ in range(self.size)]
        return [run(INPUT)]

    def _expected_runs(self) -> int:
        if self.workload == "W4":
            return FLOW_CHAIN * self.size
        return self.size + 1 if self.fanout else self.size

    def check(self, outcome: list[FlowResult]) -> None:
        for result in outcome:
            if not result.success:
                raise EngineFailed(
                    f"flow failed after {len(self.calls)} of {self._expected_runs()} "
                    f"node runs: {result.error}"
                )
        if self.workload == "W4":
            check_chain(self.calls, FLOW_CHAIN, flows=self.size)
        elif self.fanout:
            check_fanout(self.calls, self.size)
        else:
            check_chain(self.calls, self.size)
        for result in outcome:
            check_equal("final_output", result.final_output, INPUT)
        self._last = outcome

    def reset(self) -> None:
        self.calls.clear()
        if isinstance(self.store, InMemoryStore):
            for result in self._last:
                self.store.clear_flow(result.flow_id)
        self._last = []

    def close(self) -> None:
        self.dispatcher.shutdown()
        close = getattr(self.store, "close", None)
        if callable(close):
            close()


def make(
    workload: str, variant: str, size: int, params: dict[str, Any], workdir: Path
) -> Qm015Bench:
    """The bench for one cell on 0.1.5."""
    return Qm015Bench(workload, variant, size, params, workdir)

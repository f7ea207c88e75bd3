"""The workloads on LangGraph 1.2 (``.bench/langgraph``).

Nodes are plain ``def`` functions over a one-key state that return no update
(LangGraph's cheapest node). A chain is ``START -> n0 -> ... -> END``; a
fan-out sends ``START`` to every branch and joins them with
``add_edge([branches...], "join")``, which waits for all of them. A chain of
N nodes takes N supersteps, so ``recursion_limit`` is raised to fit, as a user
would have to.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from qmbench.checks import (
    JOIN,
    EngineFailed,
    branch_names,
    chain_names,
    check_chain,
    check_equal,
    check_fanout,
)
from qmbench.spec import CONCURRENT, FANOUT, FLOW_CHAIN, INPUT


class State(TypedDict):
    value: str


class LangGraphBench:
    """A workload on a compiled `StateGraph` with the checkpointer of ``variant``."""

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
        self.flows = size if workload in ("W4", CONCURRENT) else 1
        self.checkpointer: Any = None
        self.conn: sqlite3.Connection | None = None
        self.graph: Any = None
        self.durability: str | None = "sync" if variant.endswith("-sync") else None
        self.pg_conn: Any = None
        self.postgres_dsn: str | None = params.get("postgres_dsn")
        self._configs: list[dict[str, Any]] = []

    def _node(self, name: str) -> Callable[[State], Any]:
        calls = self.calls
        sleep_s = self.sleep_s
        if self.workload == CONCURRENT:

            async def awaiting(state: State) -> None:
                await asyncio.sleep(sleep_s)
                calls.append(name)

            return awaiting
        if sleep_s:

            def sleeper(state: State) -> None:
                time.sleep(sleep_s)
                calls.append(name)

            return sleeper

        def noop(state: State) -> None:
            calls.append(name)

        return noop

    def _builder(self) -> tuple[StateGraph, int]:
        """The graph builder and the supersteps one run takes."""
        builder = StateGraph(State)
        if self.fanout:
            branches = branch_names(self.size)
            for name in branches:
                builder.add_node(name, self._node(name))
                builder.add_edge(START, name)
            calls = self.calls

            def join(state: State) -> None:
                calls.append(JOIN)

            builder.add_node(JOIN, join)
            builder.add_edge(branches, JOIN)
            builder.add_edge(JOIN, END)
            return builder, 2
        length = {"W4": FLOW_CHAIN, CONCURRENT: 1}.get(self.workload, self.size)
        names = chain_names(length)
        for name in names:
            builder.add_node(name, self._node(name))
        builder.add_edge(START, names[0])
        for a, b in itertools.pairwise(names):
            builder.add_edge(a, b)
        builder.add_edge(names[-1], END)
        return builder, len(names)

    def _next_configs(self) -> list[dict[str, Any]]:
        configs = []
        for _ in range(self.flows):
            config: dict[str, Any] = {"recursion_limit": self.steps + 10}
            if self.checkpointer is not None:
                config["configurable"] = {"thread_id": str(uuid.uuid4())}
            if self.variant == "lg-par":
                config["max_concurrency"] = 32
            configs.append(config)
        return configs

    def setup(self) -> None:
        builder, self.steps = self._builder()
        if self.variant == "lg-mem":
            self.checkpointer = InMemorySaver()
        elif self.variant.startswith("lg-sqlite"):
            self.conn = sqlite3.connect(self.workdir / "langgraph.db", check_same_thread=False)
            self.checkpointer = SqliteSaver(self.conn)
        elif self.variant.startswith("lg-postgres"):
            self.checkpointer = self._postgres_saver()
        self.graph = builder.compile(checkpointer=self.checkpointer)
        self._configs = self._next_configs()

    def _postgres_saver(self) -> Any:
        """PostgresSaver on one connection, as ``PostgresSaver.from_conn_string`` opens
        it, with its tables in a schema of this cell's own."""
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        if self.postgres_dsn is None:
            raise EngineFailed("no PostgreSQL server: the harness passes postgres_dsn")
        schema = f"lg_cell_{os.getpid()}"
        with psycopg.connect(self.postgres_dsn, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        self.pg_conn = psycopg.connect(
            self.postgres_dsn,
            autocommit=True,
            prepare_threshold=0,
            row_factory=dict_row,
            options=f"-c search_path={schema}",
        )
        saver = PostgresSaver(self.pg_conn)
        saver.setup()
        return saver

    def run(self) -> list[Any]:
        if self.workload == CONCURRENT:
            return asyncio.run(self._concurrent())
        invoke = self.graph.invoke
        start = {"value": INPUT}
        if self.durability is None:
            return [invoke(start, config) for config in self._configs]
        return [invoke(start, config, durability=self.durability) for config in self._configs]

    async def _concurrent(self) -> list[Any]:
        ainvoke = self.graph.ainvoke
        start = {"value": INPUT}
        return list(await asyncio.gather(*(ainvoke(start, c) for c in self._configs)))

    def check(self, outcome: list[Any]) -> None:
        if len(outcome) != self.flows:
            raise EngineFailed(f"{len(outcome)} results for {self.flows} flows")
        if self.workload == CONCURRENT:
            check_chain(self.calls, 1, flows=self.size)
        elif self.workload == "W4":
            check_chain(self.calls, FLOW_CHAIN, flows=self.size)
        elif self.fanout:
            check_fanout(self.calls, self.size)
        else:
            check_chain(self.calls, self.size)
        for state in outcome:
            check_equal("final state", state, {"value": INPUT})

    def reset(self) -> None:
        self.calls.clear()
        if isinstance(self.checkpointer, InMemorySaver):
            # In memory, each run starts empty so the peak is one run's.
            for config in self._configs:
                self.checkpointer.delete_thread(config["configurable"]["thread_id"])
        self._configs = self._next_configs()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.pg_conn is not None:
            self.pg_conn.close()


def make(
    workload: str, variant: str, size: int, params: dict[str, Any], workdir: Path
) -> LangGraphBench:
    """The bench for one cell on LangGraph."""
    return LangGraphBench(workload, variant, size, params, workdir)

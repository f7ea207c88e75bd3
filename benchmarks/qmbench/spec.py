"""What is measured: workloads, their sizes, the engine variants run on each, and cells.

A *cell* is one (workload, size, variant) and runs in its own process. A
*variant* is one engine in one configuration (a store, a dispatcher, a
checkpointer); its ``engine`` names the interpreter it needs. Stdlib only:
this module is imported by the parent and by cells in every interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Interpreters: our development environment and the two peer environments.
OURS, LANGGRAPH, QM015 = "ours", "langgraph", "qm015"
ENGINES = (OURS, LANGGRAPH, QM015)

#: What every engine's workloads share, so their results compare: the input of
#: each flow, the no-op nodes of each W4 flow, and the workloads whose graph is a
#: fan-out into one join (the others are chains).
INPUT = "x"
FLOW_CHAIN = 5
FANOUT = frozenset({"W2", "W6", "W6f"})
#: The workload of many concurrent flows, each one node awaiting ``sleep_s``.
CONCURRENT = "W8"


@dataclass(frozen=True)
class Variant:
    """One engine in one configuration."""

    key: str
    engine: str
    label: str
    note: str = ""


VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Variant("ours", OURS, "ours", "FlowRunner, SyncDispatcher, InMemoryStore"),
        Variant(
            "ours-sqlite",
            OURS,
            "ours SQLite",
            "qm_store_sqlite.SQLiteStore(path=...), its default synchronous=NORMAL (WAL: "
            "a commit survives a process crash, is not fsynced)",
        ),
        Variant(
            "ours-sqlite-full",
            OURS,
            "ours SQLite FULL",
            'SQLiteStore(path=..., synchronous="FULL"): an fsync per commit, like the '
            "peers, which run at SQLite's default (FULL)",
        ),
        Variant("ours-redis", OURS, "ours Redis", "qm_store_redis.RedisStore(url=...)"),
        Variant(
            "ours-postgres",
            OURS,
            "ours PostgreSQL",
            "qm_store_postgres.PostgresStore(dsn=...), a schema per cell",
        ),
        Variant("ours-sync", OURS, "ours sync", "FlowRunner, SyncDispatcher, InMemoryStore"),
        Variant(
            "ours-thread",
            OURS,
            "ours thread",
            "qm_dispatch_thread.ThreadDispatcher(max_workers=32), InMemoryStore",
        ),
        Variant(
            "ours-async",
            OURS,
            "ours async",
            "FlowRunner.arun under asyncio.gather, AsyncDispatcher, InMemoryStore",
        ),
        Variant("lg", LANGGRAPH, "LangGraph", "StateGraph, no checkpointer"),
        Variant(
            "lg-async",
            LANGGRAPH,
            "LangGraph async",
            "StateGraph.ainvoke under asyncio.gather, no checkpointer",
        ),
        Variant("lg-mem", LANGGRAPH, "LangGraph InMemorySaver", "checkpointer=InMemorySaver()"),
        Variant(
            "lg-sqlite",
            LANGGRAPH,
            "LangGraph SqliteSaver",
            "checkpointer=SqliteSaver, default durability (async)",
        ),
        Variant(
            "lg-sqlite-sync",
            LANGGRAPH,
            "LangGraph SqliteSaver sync",
            'checkpointer=SqliteSaver, durability="sync"',
        ),
        Variant(
            "lg-postgres",
            LANGGRAPH,
            "LangGraph PostgresSaver",
            "checkpointer=PostgresSaver (psycopg 3), default durability (async)",
        ),
        Variant(
            "lg-postgres-sync",
            LANGGRAPH,
            "LangGraph PostgresSaver sync",
            'checkpointer=PostgresSaver (psycopg 3), durability="sync"',
        ),
        Variant(
            "lg-par",
            LANGGRAPH,
            "LangGraph",
            "parallel branches, config max_concurrency=32",
        ),
        Variant("qm015", QM015, "0.1.5 sync", "FlowRunner, SyncDispatcher, InMemoryStore"),
        Variant(
            "qm015-thread",
            QM015,
            "0.1.5 threads",
            "ThreadDispatcher() (its default 4 workers), InMemoryStore",
        ),
        Variant(
            "qm015-thread32",
            QM015,
            "0.1.5 threads",
            "ThreadDispatcher(max_workers=32), InMemoryStore",
        ),
        Variant("qm015-sqlite", QM015, "0.1.5 SQLite", "SQLiteStore, SyncDispatcher"),
        Variant(
            "qm015-sqlite-thread",
            QM015,
            "0.1.5 SQLite threads",
            "SQLiteStore, ThreadDispatcher() (4 workers)",
        ),
    )
}


@dataclass(frozen=True)
class Workload:
    """A workload: its shape, sizes and the variants it runs on.

    ``unit`` is what times are divided by: ``node`` (the workload's no-op
    nodes), ``flow`` (W4), or ``run`` (W6: wall time of one run).
    ``primary`` is our variant that the ratios compare peers with;
    ``baseline`` (W6) is the variant speed-ups are measured against.
    """

    key: str
    title: str
    unit: str
    sizes: tuple[int, ...]
    quick_sizes: tuple[int, ...]
    variants: tuple[str, ...]
    primary: str
    size_label: str
    description: str
    baseline: str | None = None
    peers_note: str = ""
    params: dict[str, object] = field(default_factory=dict)


WORKLOADS: dict[str, Workload] = {
    w.key: w
    for w in (
        Workload(
            "W1",
            "chain",
            "node",
            (100, 1_000, 5_000, 100_000),
            (100, 1_000),
            ("ours", "lg", "lg-mem", "qm015", "qm015-thread"),
            "ours",
            "nodes",
            "N no-op nodes in a line, input to output.",
        ),
        Workload(
            "W2",
            "fan-out / fan-in",
            "node",
            (10, 100, 1_000, 10_000),
            (10, 100),
            ("ours", "lg", "qm015", "qm015-thread"),
            "ours",
            "branches",
            "N no-op branches from the start into one join that waits for all of them; "
            "per node = per no-op node (N branches + the join).",
        ),
        Workload(
            "W3",
            "durable chain on SQLite",
            "node",
            (100, 1_000, 5_000, 10_000),
            (100,),
            (
                "ours-sqlite",
                "ours-sqlite-full",
                "lg-sqlite",
                "lg-sqlite-sync",
                "qm015-sqlite",
                "qm015-sqlite-thread",
            ),
            "ours-sqlite",
            "nodes",
            "W1's chain with every node's outcome written to a SQLite file before the "
            "next node runs (one file per cell, a new flow / thread per run).",
        ),
        Workload(
            "W4",
            "many small flows",
            "flow",
            (1_000,),
            (100,),
            ("ours", "lg", "lg-mem", "qm015"),
            "ours",
            "flows",
            "N flows of a 5-node no-op chain, one after another on one runner / compiled graph.",
        ),
        Workload(
            "W5",
            "durable chain on Redis",
            "node",
            (100, 1_000, 5_000, 10_000),
            (100,),
            ("ours-redis",),
            "ours-redis",
            "nodes",
            "W1's chain on a local redis-server started by the harness on a free port.",
            peers_note=(
                "No peer: 0.1.5 shipped no Redis store (only a README sketch), and "
                "LangGraph's Redis checkpointer (langgraph-checkpoint-redis) needs the "
                "RedisJSON and RediSearch modules, which plain Redis 7 does not have."
            ),
        ),
        Workload(
            "W3p",
            "durable chain on PostgreSQL",
            "node",
            (100, 1_000, 5_000, 10_000),
            (100,),
            ("ours-postgres", "lg-postgres", "lg-postgres-sync"),
            "ours-postgres",
            "nodes",
            "W1's chain with every node's outcome committed to a local PostgreSQL server "
            "the harness starts (fsync and synchronous_commit on: each commit is flushed "
            "to disk before it returns); a schema per cell, a new flow / thread per run.",
            peers_note=(
                "0.1.5 shipped no PostgreSQL store. LangGraph's is "
                "langgraph-checkpoint-postgres's PostgresSaver on one psycopg 3 connection."
            ),
        ),
        Workload(
            "W6",
            "blocking 10 ms branches",
            "run",
            (100,),
            (100,),
            ("ours-thread", "ours-sync", "qm015-thread32", "lg-par"),
            "ours-thread",
            "branches",
            "N branches whose executors block for 10 ms (time.sleep) into one join; "
            "wall time of one run, speed-up over our SyncDispatcher (ideal with 32 "
            "workers: 100 sleeps in ceil(100/32) = 4 waves, a speed-up of 25).",
            baseline="ours-sync",
            params={"sleep_s": 0.01},
        ),
        Workload(
            "W6c",
            "thread dispatcher overhead, chain",
            "node",
            (1_000,),
            (100,),
            ("ours-thread", "ours-sync"),
            "ours-thread",
            "nodes",
            "W1's no-op chain, blocking def executors; our ThreadDispatcher(32) against "
            "our SyncDispatcher.",
            baseline="ours-sync",
        ),
        Workload(
            "W6f",
            "thread dispatcher overhead, fan-out",
            "node",
            (1_000,),
            (100,),
            ("ours-thread", "ours-sync"),
            "ours-thread",
            "branches",
            "W2's no-op fan-out / fan-in, blocking def executors; our ThreadDispatcher(32) "
            "against our SyncDispatcher.",
            baseline="ours-sync",
        ),
        Workload(
            "W8",
            "concurrent flows awaiting 100 ms",
            "run",
            (10_000,),
            (1_000,),
            ("ours-async", "lg-async"),
            "ours-async",
            "flows",
            "N flows started at once in one process (asyncio.gather), each one node that "
            "awaits asyncio.sleep(0.1) (the web-service case); wall time of the whole run "
            "(ideal 100 ms) and peak RSS; memory per flow in flight is (peak RSS - RSS "
            "once set up) / N.",
            params={"sleep_s": 0.1},
        ),
    )
}


@dataclass(frozen=True)
class Cell:
    """One measurement: a workload at one size on one variant, in its own process."""

    workload: str
    size: int
    variant: str

    @property
    def id(self) -> str:
        return f"{self.workload}/{self.size}/{self.variant}"

    @property
    def engine(self) -> str:
        return VARIANTS[self.variant].engine


def plan(
    only: list[str] | None = None,
    engines: list[str] | None = None,
    *,
    quick: bool = False,
) -> list[Cell]:
    """Every cell to run, workload by workload, variant by variant, sizes ascending."""
    unknown = [k for k in only or () if k not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    bad = [e for e in engines or () if e not in ENGINES]
    if bad:
        raise ValueError(f"unknown engine(s) {', '.join(bad)}; known: {', '.join(ENGINES)}")
    cells: list[Cell] = []
    for key, workload in WORKLOADS.items():
        if only and key not in only:
            continue
        sizes = workload.quick_sizes if quick else workload.sizes
        for variant in workload.variants:
            if engines and VARIANTS[variant].engine not in engines:
                continue
            cells.extend(Cell(key, size, variant) for size in sizes)
    return cells


def units(workload: str, size: int) -> int:
    """What a run's time is divided by: no-op nodes, flows, or 1 (a whole run)."""
    unit = WORKLOADS[workload].unit
    if unit == "run":
        return 1
    if workload in FANOUT:
        return size + 1  # the branches and the join
    return size

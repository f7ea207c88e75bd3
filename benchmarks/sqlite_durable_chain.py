"""Durable chains on the SQLite store: cost per node at 1,000 / 5,000 / 10,000 nodes.

Runs chains of N no-op nodes (plus Start and End) with `SQLiteStore` at its
default settings (WAL, synchronous NORMAL) in a fresh file per size: one
untimed run, then the median of 5 timed runs, each a new flow in the same file.
Every node's outcome is committed to the file before the next node runs.
Target: <= 100 µs per node, the same at 1,000 and 10,000 nodes.

Beside it: this process's CPU time per node, the same chain on the in-memory
store (the engine's own cost), the file's size per node, and, when the
benchmark environment of LangGraph exists (``benchmarks/compare.py`` creates
``.bench/langgraph``), LangGraph 1.2's ``SqliteSaver`` on the same chain as a
ratio (``--langgraph-sizes``; it takes seconds per 1,000 nodes).

    .venv/bin/python benchmarks/sqlite_durable_chain.py [--sizes 1000 5000 10000] [--runs 5]
        [--synchronous NORMAL] [--langgraph-sizes 1000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner, InMemoryStore
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing import chain_graph

ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH_PYTHON = ROOT / ".bench" / "langgraph" / "bin" / "python"


def _noop(ctx: Any) -> NodeResult:
    return NodeResult(output_text="ok")


def _measure(store: Any, size: int, runs: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) of ``runs`` flows of an ``size``-node chain."""
    runner = FlowRunner(chain_graph(size + 2), SimpleNodeRegistry({"echo": _noop}), store=store)
    first = runner.run("go")  # untimed: imports, the graph's first commit
    assert first.status is FlowStatus.COMPLETED, first.error
    walls, cpus = [], []
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        result = runner.run("go")
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        assert result.status is FlowStatus.COMPLETED, result.error
    return walls, cpus


def _langgraph(size: int, runs: int, workdir: Path) -> float | None:
    """Median seconds of LangGraph's SqliteSaver chain (benchmarks/cell.py, W3)."""
    if not LANGGRAPH_PYTHON.exists():
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        str(LANGGRAPH_PYTHON),
        str(ROOT / "benchmarks" / "cell.py"),
        "--workload",
        "W3",
        "--variant",
        "lg-sqlite-sync",
        "--size",
        str(size),
        "--runs",
        str(runs),
        "--workdir",
        str(workdir),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("QMBENCH-RESULT "):
            result = json.loads(line.removeprefix("QMBENCH-RESULT "))
            if result["status"] == "ok":
                return float(result["median_s"])
    print(f"  LangGraph at {size} nodes did not run: {out.stdout[-300:]}{out.stderr[-300:]}")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--synchronous", default="NORMAL")
    parser.add_argument("--langgraph-sizes", type=int, nargs="*", default=[1000])
    parser.add_argument("--profile", action="store_true", help="cProfile one run per size")
    args = parser.parse_args()

    print(f"SQLite store, synchronous={args.synchronous}, median of {args.runs} runs")
    print(
        f"{'nodes':>7} {'µs/node':>8} {'min':>7} {'cpu µs':>7} {'memory':>7} {'bytes/node':>10}"
        f" {'LangGraph sync µs/node':>23} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"chain-{size}.db"
            store = SQLiteStore(path, synchronous=args.synchronous)
            walls, cpus = _measure(store, size, args.runs)
            if args.profile:
                runner = FlowRunner(
                    chain_graph(size + 2), SimpleNodeRegistry({"echo": _noop}), store=store
                )
                profiler = cProfile.Profile()
                profiler.runcall(runner.run, "go")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
            asyncio.run(store.close())
            memory, _ = _measure(InMemoryStore(), size, args.runs)
            flows = args.runs + 1
            file_bytes = sum(p.stat().st_size for p in Path(tmp).glob(f"chain-{size}.db*"))
            per_node = statistics.median(walls) / size * 1e6
            lg = None
            if size in args.langgraph_sizes:
                lg_seconds = _langgraph(size, min(args.runs, 3), Path(tmp) / f"lg-{size}")
                lg = None if lg_seconds is None else lg_seconds / size * 1e6
            lg_text = f"{lg:23.0f} {lg / per_node:5.0f}x" if lg is not None else f"{'-':>23}"
            print(
                f"{size:>7} {per_node:8.1f} {min(walls) / size * 1e6:7.1f}"
                f" {statistics.median(cpus) / size * 1e6:7.1f}"
                f" {statistics.median(memory) / size * 1e6:7.1f}"
                f" {file_bytes / (size * flows):10.0f} {lg_text}",
                flush=True,
            )


if __name__ == "__main__":
    main()

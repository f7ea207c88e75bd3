"""Map1: the engine's cost per item, by the list's length (issue #30 item 2).

``Start -> M (Map1, node "noop", max_concurrency K) -> End`` over N items, the
items' node a no-op, on the in-memory store and on SQLite (a file in a temporary
directory), with the sync dispatcher. Prints microseconds per item (the flow's
wall time divided by N) at N = 100, 1,000 and 10,000: flat figures mean the cost
of an item does not grow with the list.

    .venv/bin/python benchmarks/map_items.py [--runs 3] [--k 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner, InMemoryStore, NodeResult, SimpleNodeRegistry
from quartermaster_engine.testing.maps import ItemsOf, map_graph


def noop(ctx: Any) -> NodeResult:
    return NodeResult(output_text="ok")


def per_item(store: Any, n: int, k: int) -> float:
    runner = FlowRunner(
        map_graph(k), SimpleNodeRegistry({"work": noop, "Map1": ItemsOf(n)}), store=store
    )
    started = time.perf_counter()
    result = runner.run("go")
    took = time.perf_counter() - started
    assert result.status.value == "completed", result.error
    assert result.final_output.count('"ok"') == n
    return took / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, K = {args.k}, median of {args.runs} runs")
    print(f"{'store':8} {'N':>7} {'us/item':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("memory", "sqlite"):
            for n in (100, 1_000, 10_000):
                figures = []
                for run in range(args.runs):
                    if name == "memory":
                        store: Any = InMemoryStore()
                    else:
                        store = SQLiteStore(Path(tmp) / f"m{n}-{run}.db")
                    figures.append(per_item(store, n, args.k))
                print(f"{name:8} {n:>7,} {statistics.median(figures):>9.1f}")


if __name__ == "__main__":
    main()

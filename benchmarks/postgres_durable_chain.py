"""Durable chains on the PostgreSQL store: cost per node at 1,000 / 5,000 / 10,000 nodes.

Starts its own PostgreSQL server (initdb in a temporary folder, a free port;
fsync on, synchronous_commit on: every commit is flushed to disk before it
returns, like the peers), runs chains of no-op nodes with `PostgresStore` and,
for reference, with the in-memory store, and prints the median of the runs per
size. Target: <= 250 µs per node, flat as the chain grows.

Every node is one commit: one call of the server-side ``qm_commit``, one round
trip. To tell the store's cost from the machine's, it also prints this
process's CPU time per node and the round trip of ``SELECT 1`` on a pooled
connection.

    .venv/bin/python benchmarks/postgres_durable_chain.py [--sizes 1000 5000 10000] [--runs 5]
        [--no-fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import asyncpg

from qm_store_postgres import PostgresStore
from qm_store_postgres.testing import TemporaryServer
from quartermaster_engine import FlowRunner, InMemoryStore
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing import chain_graph


def _noop(ctx: Any) -> NodeResult:
    return NodeResult(output_text="ok")


async def _measure(store: Any, size: int, runs: int) -> tuple[float, float]:
    """Median (wall, this process's CPU) seconds of one flow."""
    runner = FlowRunner(chain_graph(size, "noop"), SimpleNodeRegistry({"noop": _noop}), store=store)
    await runner.arun("go")  # warm-up: compiled graph, statements prepared, pool open
    walls, cpus = [], []
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        result = await runner.arun("go")
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        if result.status is not FlowStatus.COMPLETED:
            raise RuntimeError(f"chain of {size} did not complete: {result.error}")
    return statistics.median(walls), statistics.median(cpus)


async def _round_trip(dsn: str, count: int = 2000) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            await conn.fetchval("SELECT 1")
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        await conn.close()


async def _main(server: TemporaryServer, sizes: list[int], runs: int) -> None:
    store = PostgresStore(server.dsn(), schema_name="bench")
    try:
        print(f"PostgreSQL at {server.dsn(password='***')}, fsync {server.fsync}, ")
        print(f"synchronous_commit on; median of {runs} runs, no-op nodes, sync dispatcher;")
        print("per node:\n")
        print(
            f"{'nodes':>7} {'postgres µs':>12} {'client CPU µs':>14} {'SELECT 1 µs':>12}"
            f" {'memory µs':>10}"
        )
        for size in sizes:
            wall, cpu = await _measure(store, size, runs)
            trip = await _round_trip(server.dsn())
            memory, _ = await _measure(InMemoryStore(), size, runs)
            print(
                f"{size:>7} {wall / size * 1e6:>12.1f} {cpu / size * 1e6:>14.1f}"
                f" {trip * 1e6:>12.1f} {memory / size * 1e6:>10.1f}"
            )
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-fsync", action="store_true", help="run the server with fsync off")
    args = parser.parse_args()
    server = TemporaryServer(fsync=not args.no_fsync).start()
    try:
        asyncio.run(_main(server, args.sizes, args.runs))
    finally:
        server.remove()


if __name__ == "__main__":
    main()

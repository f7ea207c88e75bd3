"""The thread dispatcher against the sync dispatcher: speed-up on blocking work, and
the engine's own cost per node with no-op blocking executors.

1. Speed-up: a fan-out of 100 branches, each a 10 ms blocking sleep, with
   ``max_workers=32``. Target: at least 0.8 x 32 = 25.6 times the sync
   dispatcher's speed. (100 calls on 32 threads take ceil(100 / 32) = 4 rounds
   of 10 ms, so 25 is the most any pool can reach at that width; a width of 128,
   four full rounds, is printed too.)
2. Overhead: a 1,000-node chain and a 1,000-branch fan-out of no-op blocking
   executors. Target: at most 3 x the sync dispatcher's time per node. The sync
   dispatcher calls executors inline; a pool must hand every call to a thread and
   its outcome back to the loop, so the floor printed under the table, a bare
   thread round trip on this machine, bounds how close a chain can get.

For reference it also runs the core's AsyncDispatcher (blocking executors in the
loop's default pool, via ``asyncio.to_thread``) and a minimal dispatcher on the
standard library's ThreadPoolExecutor through ``loop.run_in_executor``.

    .venv/bin/python benchmarks/thread_dispatcher.py [--runs 5] [--workers 32]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from qm_dispatch_thread import ThreadDispatcher
from quartermaster_engine import (
    AsyncDispatcher,
    FlowRunner,
    FlowStatus,
    GraphNode,
    GraphSpec,
    SimpleNodeRegistry,
    SyncDispatcher,
)
from quartermaster_engine.testing import build_graph, chain_graph

T = TypeVar("T")


class StdlibPoolDispatcher:
    """The plain way: a ThreadPoolExecutor, awaited through loop.run_in_executor."""

    name = "stdlib-pool"
    concurrent = True
    max_concurrency: int | None = None
    offloads_blocking = True

    def __init__(self, max_workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers)

    async def run_blocking(self, fn: Callable[[], T], node: GraphNode) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait)


def fan_graph(width: int, branch: str) -> GraphSpec:
    nodes: dict[str, str | dict[str, Any]] = {"Start": "Start1"}
    nodes.update({f"b{i}": branch for i in range(width)})
    nodes["J"] = {"type": "join", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", f"b{i}") for i in range(width)]
    edges += [(f"b{i}", "J") for i in range(width)] + [("J", "End")]
    return build_graph(nodes, edges)


def sleep_10ms(ctx: Any) -> str:
    time.sleep(0.010)
    return "slept"


def noop(ctx: Any) -> str:
    return "ok"


async def anoop(ctx: Any) -> str:
    return "ok"


REGISTRY = SimpleNodeRegistry(
    {"sleep": sleep_10ms, "noop": noop, "anoop": anoop, "join": lambda ctx: "joined"}
)


def median_seconds(graph: GraphSpec, dispatcher: Any, runs: int) -> float:
    """Median wall time of one flow, after a warm-up run."""
    runner = FlowRunner(graph, REGISTRY, dispatcher=dispatcher)
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        result = runner.run("go")
        elapsed = time.perf_counter() - start
        if result.status is not FlowStatus.COMPLETED:
            raise RuntimeError(f"{graph.name} did not complete: {result.error}")
        if i:
            times.append(elapsed)
    return statistics.median(times)


def thread_round_trip(count: int = 5000) -> float:
    """Median time of handing a value to another thread and getting it back."""
    there: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    back: queue.SimpleQueue[int] = queue.SimpleQueue()

    def echo() -> None:
        while (item := there.get()) is not None:
            back.put(item)

    thread = threading.Thread(target=echo)
    thread.start()
    times = []
    for i in range(count):
        start = time.perf_counter()
        there.put(i)
        back.get()
        times.append(time.perf_counter() - start)
    there.put(None)
    thread.join()
    return statistics.median(times)


def speed_up(runs: int, workers: int) -> None:
    print(f"1. Speed-up: branches of a 10 ms blocking sleep, max_workers={workers}")
    print(f"   {'branches':>8} {'sync s':>8} {'thread s':>9} {'speed-up':>9} {'ideal':>6}"
          f" {'of ideal':>9} {'target':>7}")  # fmt: skip
    target = 0.8 * workers
    for width in (100, 128):
        graph = fan_graph(width, "sleep")
        sync = median_seconds(graph, SyncDispatcher(), max(1, runs // 2))
        dispatcher = ThreadDispatcher(max_workers=workers)
        threaded = median_seconds(graph, dispatcher, runs)
        dispatcher.shutdown()
        ratio = sync / threaded
        ideal = width / math.ceil(width / workers)
        verdict = "ok" if ratio >= target else "MISSED"
        print(
            f"   {width:>8} {sync:>8.3f} {threaded:>9.4f} {ratio:>8.1f}x {ideal:>5.1f}x"
            f" {ratio / ideal:>8.0%} {target:>6.1f}x {verdict}"
        )


def overhead(runs: int, workers: int, size: int) -> None:
    print(f"\n2. Engine cost per node, no-op executors, {size} nodes, µs per node")
    rows: list[tuple[str, Callable[[], Any], str]] = [
        ("sync", SyncDispatcher, "noop"),
        ("thread", lambda: ThreadDispatcher(max_workers=workers), "noop"),
        ("async (to_thread)", AsyncDispatcher, "noop"),
        ("stdlib pool", lambda: StdlibPoolDispatcher(workers), "noop"),
        # No thread at all: what the scheduler's concurrent mode costs by itself.
        ("async, async def", AsyncDispatcher, "anoop"),
    ]
    shapes: dict[str, Callable[[str], GraphSpec]] = {
        "chain": lambda kind: chain_graph(size, kind),
        "fan-out": lambda kind: fan_graph(size - 3, kind),
    }
    print(f"   {'dispatcher':<18}" + "".join(f"{s:>10} {'x sync':>7}" for s in shapes))
    sync_cost: dict[str, float] = {}
    for name, make, kind in rows:
        cells = []
        for shape, build in shapes.items():
            dispatcher = make()
            cost = median_seconds(build(kind), dispatcher, runs) / size * 1e6
            dispatcher.shutdown()
            sync_cost.setdefault(shape, cost)
            cells.append(f"{cost:>10.1f} {cost / sync_cost[shape]:>6.1f}x")
        print(f"   {name:<18}" + "".join(cells))
    floor = thread_round_trip() * 1e6
    print(f"\n   target: thread <= 3.0x sync (blocking executors); a bare thread round trip "
          f"here: {floor:.1f} µs")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per cell (median)")
    parser.add_argument("--workers", type=int, default=32, help="max_workers (default 32)")
    parser.add_argument("--size", type=int, default=1000, help="nodes of the overhead graphs")
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load}")
    print(f"median of {args.runs} runs\n")
    speed_up(args.runs, args.workers)
    overhead(args.runs, args.workers, args.size)


if __name__ == "__main__":
    main()

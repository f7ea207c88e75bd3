"""The CPU one no-op activation costs a worker, by fan-out width (64, 256, 1,024).

What a Celery worker child does per ``qm.activation`` task, without Celery's
transport: `FlowStepper.execute` (is the activation still pending? run its
executor without the lease) then `FlowStepper.complete` (under the lease:
route the outcome against the flow's current state, one fenced commit), on the
Redis store of a private redis-server. One stepper plays one worker child
(its cache of flow states stays warm, as in a child that takes every task of
the flow). A flow of ``width`` no-op async branches into one AwaitAll join is
submitted, then its activations are taken in the order they were queued.

Printed per width: this process's CPU time per branch activation (median and
mean; `time.process_time`, so the redis-server's own time is not in it) and
the wall time per activation. With ``--sample N`` only the first N branches of
each flow are timed (the frontier then shrinks from ``width`` to ``width - N``
pending activations) and the flow is deleted after them: it bounds the run
on a slow machine. With ``--steppers 2`` two steppers (two worker children)
take the activations in turn, so another one has committed to the flow before
each `execute` (the case of several workers on one wide flow). Goal of issue
#30: at most 3 ms of CPU per activation at every width.

    .venv/bin/python benchmarks/activation_cost.py [--widths 64 256 1024] [--runs 3]
        [--sample N] [--steppers 1|2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from qmbench.redis_server import redis_server

from qm_store_redis import RedisStore
from quartermaster_engine.dispatchers.async_dispatcher import AsyncDispatcher
from quartermaster_engine.nodes import SimpleNodeRegistry
from quartermaster_engine.runner.engine import Engine
from quartermaster_engine.runner.stepper import FlowStepper
from quartermaster_engine.stores.records import FlowStatus, FlowUpdate
from quartermaster_engine.testing import build_graph


class Noop:
    async def execute(self, context: Any) -> str:
        return "ok"


def fan_graph(width: int) -> Any:
    nodes: dict[str, Any] = {"Start": "Start1"}
    nodes.update({f"b{i}": "bench.noop" for i in range(width)})
    nodes["J"] = {"type": "bench.noop", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", f"b{i}") for i in range(width)]
    edges += [(f"b{i}", "J") for i in range(width)]
    edges.append(("J", "End"))
    return build_graph(nodes, edges, name=f"fan{width}")


async def one_flow(
    engine: Engine, width: int, sample: int | None = None, steppers: int = 1
) -> tuple[list[float], list[float]]:
    """CPU and wall seconds of each branch activation of one flow of ``width`` (of
    the first ``sample`` branches, then the flow is deleted), the activations
    taken in turn by ``steppers`` steppers."""
    flow_id = await engine.submit(fan_graph(width), "x")
    turns = [FlowStepper(engine) for _ in range(steppers)]
    for stepper in turns:  # each has read the flow once, as a worker child that ran before
        queue = deque(ref for ref, _ in await stepper.pending(flow_id))
    branch = {n.id for n in fan_graph(width).nodes if n.name.startswith("b")}
    cpu: list[float] = []
    wall: list[float] = []
    status = FlowStatus.RUNNING
    turn = 0
    while queue:
        ref = queue.popleft()
        stepper = turns[turn % steppers]
        turn += 1
        c0, w0 = time.process_time(), time.perf_counter()
        work = await stepper.execute(flow_id, ref)
        assert work is not None, f"activation {ref} of flow {flow_id} was not pending"
        result = await stepper.complete(work)
        c1, w1 = time.process_time(), time.perf_counter()
        if ref[0] in branch:
            cpu.append(c1 - c0)
            wall.append(w1 - w0)
        queue.extend(q for q, _ in result.queued)
        status = result.status
        if sample is not None and len(cpu) == sample:
            stopped = FlowUpdate(status=FlowStatus.STOPPED, updated_at=time.time())
            await engine.store_adapter.update_flow(flow_id, stopped)
            await engine.store_adapter.delete_flow(flow_id)
            return cpu, wall
    assert status is FlowStatus.COMPLETED, f"flow ended {status}"
    assert len(cpu) == width
    return cpu, wall


async def main_async(
    url: str, widths: list[int], runs: int, sample: int | None, steppers: int
) -> None:
    store = RedisStore(url, key_prefix=f"bench{uuid.uuid4().hex[:8]}")
    registry = SimpleNodeRegistry({"bench.noop": Noop()})
    engine = Engine(store=store, dispatcher=AsyncDispatcher(), registry=registry)
    try:
        await one_flow(engine, 16, None, steppers)  # warm-up: imports, scripts loaded, connections
        print("| width | CPU per activation, median (mean) | wall per activation | CPU timed |")
        print("|---:|---:|---:|---:|")
        for width in widths:
            medians: list[tuple[float, float, float, float]] = []
            for _ in range(runs):
                cpu, wall = await one_flow(engine, width, sample, steppers)
                medians.append(
                    (
                        statistics.median(cpu),
                        statistics.mean(cpu),
                        statistics.median(wall),
                        sum(cpu),
                    )
                )
            med, mean, wmed, total = sorted(medians)[len(medians) // 2]
            print(
                f"| {width:,} | {med * 1e3:.2f} ms ({mean * 1e3:.2f} ms) | {wmed * 1e3:.2f} ms "
                f"| {total:.2f} s |",
                flush=True,
            )
    finally:
        await engine.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=None)
    parser.add_argument("--steppers", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    with redis_server() as url:
        asyncio.run(main_async(url, args.widths, args.runs, args.sample, args.steppers))


if __name__ == "__main__":
    main()

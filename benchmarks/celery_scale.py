"""Scale-out on Celery: one flow's branches over 1, 2 and 4 workers, and the cost
of a node through Celery beside a bare Celery chain.

Starts its own redis-server on a free port (broker and store), writes a
``qm.toml`` and a module of node executors in a temporary folder, and starts
real ``qm worker`` processes.

- Scale: 256 branches, each ``time.sleep(0.1)``, into one join, with 1, 2 and 4
  workers of the same concurrency (``--concurrency``, default 4 prefork
  children each). Wall time of ``runner.run()``. Target: 4 workers at most 1/3
  of 1 worker's time.
- Overhead: a chain of 200 no-op nodes through one worker of concurrency 1, in
  ms per node, beside a bare Celery chain of 200 no-op tasks on the same broker
  and a worker of the same kind, measured in the same run. Ours is given two
  ways: ``run()``'s wall time (it includes the client's 0.2 s poll of the event
  log at the end), and first to last logged event (the workers' own time).

- Map (``--map-items 100 1000``): a Map1 node over N no-op items
  (max_concurrency 16) on 2 workers; first to last logged event per item.

    .venv/bin/python benchmarks/celery_scale.py [--concurrency 4] [--runs 3] [--workers 1 2 4]
        [--skip-scale] [--skip-overhead] [--map-items N ...]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from qmbench.redis_server import redis_server

from quartermaster_engine import FlowRunner, FlowStatus
from quartermaster_engine.testing import build_graph, call, chain_graph
from quartermaster_graph import Graph

QM = Path(sys.executable).with_name("qm")
CELERY = Path(sys.executable).with_name("celery")

NODES = """
import time
from quartermaster_engine.plugins import hookimpl

class Sleep:
    def execute(self, ctx):
        time.sleep(0.1)
        return ctx.current_node.name

class Noop:
    def execute(self, ctx):
        return "ok"

class Join:
    def execute(self, ctx):
        return str(len(ctx.predecessor_outputs))

@hookimpl
def qm_register_node_executors(register):
    register("bench.sleep", lambda s: Sleep())
    register("bench.noop", lambda s: Noop())
    register("bench.join", lambda s: Join())
"""

BARE = """
import os, time
from celery import Celery

app = Celery("bare", broker=os.environ["BARE_BROKER"])
app.conf.update(task_ignore_result=True, task_acks_late=True, worker_prefetch_multiplier=1,
                task_reject_on_worker_lost=True, task_default_queue="bare",
                worker_hijack_root_logger=False)

@app.task(name="bare.noop")
def noop(x):
    return x + 1

@app.task(name="bare.done")
def done(x):
    with open(os.environ["BARE_DONE"], "a") as f:
        f.write(f"{x} {time.time()}\\n")
"""


class Bench:
    def __init__(self, folder: Path, url: str) -> None:
        self.folder = folder
        self.url = url
        (folder / "bench_nodes.py").write_text(NODES)
        (folder / "bare_app.py").write_text(BARE)
        self.config = folder / "qm.toml"
        self.config.write_text(
            f'[store]\nname = "redis"\nurl = "{url}"\nkey_prefix = "bench"\n\n'
            f'[dispatcher]\nname = "celery"\nbroker_url = "{url}"\nqueue = "qm-bench"\n'
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        path = os.pathsep.join([str(self.folder), os.environ.get("PYTHONPATH", "")])
        return {**os.environ, "PYTHONPATH": path, **extra}

    def start(self, args: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args,
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(**env),
                start_new_session=True,
            )
        self.procs.append(proc)
        deadline = time.monotonic() + 120
        while "ready." not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        return proc

    def workers(self, count: int, concurrency: int) -> None:
        for _ in range(count):
            log = self.folder / f"worker-{len(self.procs)}.log"
            args = [str(QM), "worker", "--config", str(self.config), "-c", str(concurrency)]
            self.start([*args, "-p", "bench_nodes", "-l", "INFO"], log)

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process of the workers (their sessions)."""
        sessions = {proc.pid for proc in self.procs}
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) in sessions:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def fan_graph(width: int) -> Any:
    nodes: dict[str, Any] = {"Start": "Start1"}
    nodes.update({f"b{i}": "bench.sleep" for i in range(width)})
    nodes["J"] = {"type": "bench.join", "traverse_in": "AwaitAll"}
    nodes["End"] = "End1"
    edges = [("Start", f"b{i}") for i in range(width)]
    edges += [(f"b{i}", "J") for i in range(width)]
    edges.append(("J", "End"))
    return build_graph(nodes, edges, name="fan")


def timed_run(runner: FlowRunner, expected: str) -> tuple[float, float]:
    """``run()``'s wall time, and the time from its first logged event to its last."""
    started = time.perf_counter()
    result = runner.run("x")
    wall = time.perf_counter() - started
    if result.status is not FlowStatus.COMPLETED or result.final_output != expected:
        raise SystemExit(f"wrong result: {result.status} {result.final_output!r} {result.error}")
    events = call(runner.store, "read_events", result.flow_id)
    return wall, events[-1].ts - events[0].ts


def scale(bench: Bench, concurrency: int, runs: int, counts: list[int]) -> dict[int, float]:
    graph = fan_graph(256)
    walls: dict[int, float] = {}
    for count in counts:
        bench.workers(count, concurrency)
        with FlowRunner.from_config(graph, str(bench.config)) as runner:
            timed_run(runner, "256")  # warm-up: imports and connections of every child
            cpu = bench.cpu_seconds()
            times = [timed_run(runner, "256")[0] for _ in range(runs)]
            cpu = (bench.cpu_seconds() - cpu) / runs
        bench.stop()
        walls[count] = statistics.median(times)
        print(
            f"  {count} worker(s) x {concurrency}: {walls[count]:.2f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in times)}); workers' CPU {cpu:.2f} s per run",
            flush=True,
        )
    return walls


def bare_chain(bench: Bench, length: int, runs: int) -> list[float]:
    from celery import Celery, chain

    done = bench.folder / "bare-done.txt"
    bench.start(
        [str(CELERY), "-A", "bare_app", "worker", "-c", "1", "-Q", "bare", "-l", "INFO"],
        bench.folder / "bare.log",
        BARE_BROKER=bench.url,
        BARE_DONE=str(done),
    )
    app = Celery("bare", broker=bench.url)
    app.conf.task_default_queue = "bare"
    noop = app.signature("bare.noop")
    per_task: list[float] = []
    for i in range(runs + 1):
        lines = done.read_text().count("\n") if done.exists() else 0
        started = time.time()
        sigs = [noop.clone(args=(0,))] + [noop.clone() for _ in range(length - 2)]
        chain(*sigs, app.signature("bare.done")).apply_async()
        while (done.read_text().count("\n") if done.exists() else 0) == lines:
            time.sleep(0.002)
        finished = float(done.read_text().splitlines()[-1].split()[1])
        if i:  # the first is a warm-up
            per_task.append((finished - started) / length * 1000)
    app.close()
    bench.stop()
    return per_task


def overhead(bench: Bench, runs: int) -> None:
    length = 200
    graph = chain_graph(length, "bench.noop")
    bench.workers(1, 1)
    with FlowRunner.from_config(graph, str(bench.config)) as runner:
        timed_run(runner, "ok")
        measured = [timed_run(runner, "ok") for _ in range(runs)]
    bench.stop()
    ours_wall = statistics.median(w for w, _ in measured) / length * 1000
    ours_log = statistics.median(s for _, s in measured) / length * 1000
    bare = statistics.median(bare_chain(bench, length, runs))
    print(f"  ours, run() wall:              {ours_wall:.2f} ms per node", flush=True)
    print(f"  ours, first to last event:     {ours_log:.2f} ms per node", flush=True)
    print(f"  bare Celery chain, same broker: {bare:.2f} ms per task", flush=True)
    print(f"  ratio (first to last event / bare): {ours_log / bare:.2f}x (target <= 1.5x)")


def map_items(bench: Bench, sizes: list[int], workers: int, concurrency: int) -> None:
    """A Map1 node over N no-op items (max_concurrency 16) on ``workers`` workers:
    first to last logged event per item, which should not grow with N."""
    bench.workers(workers, concurrency)
    for n in sizes:
        graph = (
            Graph("map")
            .map("M", items="input.split()", node="bench.noop", max_concurrency=16)
            .end()
            .build()
        )
        with FlowRunner.from_config(graph, str(bench.config)) as runner:
            text = " ".join(str(i) for i in range(n))
            result = runner.run(text)
            if result.status is not FlowStatus.COMPLETED or result.final_output.count('"ok"') != n:
                raise SystemExit(f"wrong result: {result.status} {result.error}")
            events = call(runner.store, "read_events", result.flow_id)
            span = events[-1].ts - events[0].ts
        print(f"  {n:>6,} items: {span:.2f} s, {span / n * 1000:.2f} ms per item", flush=True)
    bench.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--map-items", type=int, nargs="*", default=[])
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    with redis_server() as url, tempfile.TemporaryDirectory(prefix="qm-celery-bench-") as tmp:
        bench = Bench(Path(tmp), url)
        try:
            if not args.skip_scale:
                print("scale: 256 branches of time.sleep(0.1) into one join", flush=True)
                walls = scale(bench, args.concurrency, args.runs, args.workers)
                if 1 in walls and 4 in walls:
                    ratio = walls[4] / walls[1]
                    print(f"  4 workers / 1 worker: {ratio:.2f} (target <= 0.33)", flush=True)
            if not args.skip_overhead:
                print("overhead: a chain of 200 no-op nodes, one worker of concurrency 1")
                overhead(bench, args.runs)
            if args.map_items:
                print(f"map: a Map1 node over N no-op items, 2 workers x {args.concurrency}")
                map_items(bench, args.map_items, 2, args.concurrency)
        finally:
            bench.stop()
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()

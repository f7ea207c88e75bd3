"""Durable chains on the Redis store: cost per node at 1,000 / 5,000 / 10,000 nodes.

Starts its own redis-server on a free port in a temporary folder (append-only
file on, fsync every second: a usual production setting), runs chains of no-op
nodes with `RedisStore` and, for reference, with the in-memory store, and
prints the median of 5 runs per size. Target: <= 150 µs per node on the Redis
store, flat as the chain grows.

Every node is one commit, so one round trip to the server. To tell the store's
cost from the machine's, it also prints this process's CPU time per node, the
server's time per commit script (INFO commandstats) and the round trip of a
PING on the same connection.

    .venv/bin/python benchmarks/redis_durable_chain.py [--sizes 1000 5000 10000] [--runs 5]
        [--unix] [--no-aof] [--no-gc]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from qm_store_redis import RedisStore
from quartermaster_engine import FlowRunner, InMemoryStore
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing import chain_graph


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(folder: Path, aof: bool, unix: bool) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if aof else []
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    args += ["--save", "", *persistence, "--logfile", str(folder / "redis.log")]
    if unix:
        args += ["--unixsocket", str(folder / "redis.sock")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.01)
    proc.kill()
    sys.exit(f"redis-server did not start on port {port}")


def _noop(ctx: Any) -> NodeResult:
    return NodeResult(output_text="ok")


def _script_usec(admin: redis.Redis) -> tuple[int, int]:
    """(calls, µs) of EVALSHA on the server so far."""
    stats = admin.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return int(stats["calls"]), int(stats["usec"])


async def _measure(store: Any, size: int, runs: int, no_gc: bool) -> tuple[float, float]:
    """Median (wall, this process's CPU) seconds of one flow."""
    runner = FlowRunner(chain_graph(size, "noop"), SimpleNodeRegistry({"noop": _noop}), store=store)
    await runner.arun("go")  # warm-up: compiled graph, scripts loaded, connections open
    walls, cpus = [], []
    for _ in range(runs):
        if no_gc:
            gc.collect()
            gc.disable()
        cpu, wall = time.process_time(), time.perf_counter()
        result = await runner.arun("go")
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        gc.enable()
        if result.status is not FlowStatus.COMPLETED:
            raise RuntimeError(f"chain of {size} did not complete: {result.error}")
    return statistics.median(walls), statistics.median(cpus)


async def _ping_floor(store: RedisStore, count: int = 2000) -> float:
    client = store._clients.get()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await client.command("PING")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def _main(sizes: list[int], runs: int, aof: bool, unix: bool, no_gc: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="qm-redis-bench-") as folder:
        proc, port = _start_redis(Path(folder), aof, unix)
        url = f"unix://{folder}/redis.sock?db=0" if unix else f"redis://127.0.0.1:{port}/0"
        store = RedisStore(url, key_prefix="bench")
        admin = redis.Redis(port=port)
        try:
            print(f"redis-server on {url}, append-only file {'on (everysec)' if aof else 'off'}")
            gc_note = ", cyclic GC off while timing" if no_gc else ""
            print(f"median of {runs} runs, no-op nodes, sync dispatcher{gc_note}; per node:\n")
            print(
                f"{'nodes':>7} {'redis µs':>9} {'client CPU µs':>14} {'server µs':>10}"
                f" {'PING µs':>8} {'memory µs':>10}"
            )
            for size in sizes:
                calls0, usec0 = _script_usec(admin)
                wall, cpu = await _measure(store, size, runs, no_gc)
                calls1, usec1 = _script_usec(admin)
                server = (usec1 - usec0) / max(1, calls1 - calls0)
                ping = await _ping_floor(store)
                memory, _ = await _measure(InMemoryStore(), size, runs, no_gc)
                print(
                    f"{size:>7} {wall / size * 1e6:>9.1f} {cpu / size * 1e6:>14.1f}"
                    f" {server:>10.1f} {ping * 1e6:>8.1f} {memory / size * 1e6:>10.1f}"
                )
        finally:
            admin.close()
            await store.close()
            proc.terminate()
            proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-aof", action="store_true", help="run the server without AOF")
    parser.add_argument("--unix", action="store_true", help="connect through a Unix socket")
    parser.add_argument(
        "--no-gc", action="store_true", help="diagnostic: Python's cyclic GC off while timing"
    )
    args = parser.parse_args()
    asyncio.run(_main(args.sizes, args.runs, not args.no_aof, args.unix, args.no_gc))


if __name__ == "__main__":
    main()

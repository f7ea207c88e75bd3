"""Floors: what a node, a SQLite commit, a Redis script and a PostgreSQL commit cost
at least on this machine, with the drivers our stores use, beside what our engine pays.

Issue #31 asks, where a hot-path goal is not reached, for the floor that bounds it.
Each floor is the least a durable step can do through the same driver, server
settings and event loop as our store (see ``benchmarks/qmbench``: the same private
redis-server and PostgreSQL server the W5 and W3p cells use):

- Python: one function call and three dict operations (the probe's floor,
  ``../shared/tools/hot_path_probe.py``), and one ``await`` of a coroutine;
- SQLite (aiosqlite, WAL, ``synchronous=NORMAL`` and ``FULL``): an empty
  transaction, and a transaction inserting one 200-byte row, each awaited;
- Redis (redis.asyncio): ``PING``, and ``EVALSHA`` of a script that writes one
  200-byte value (the shape of our commit script, without its work);
- PostgreSQL (asyncpg, ``fsync`` and ``synchronous_commit`` on): ``SELECT 1``,
  and an ``INSERT`` of one 200-byte row in its own transaction; plus
  ``pg_test_fsync``'s one-write ``fdatasync`` rate on the same file system.

Then it runs our engine's durable chains (W3, W5, W3p's graph: 1,000 no-op nodes,
one commit per node) against the same servers, and prints per node: our time, the
floor of one commit, and the ratio. Median of ``--runs`` runs; CPU time in brackets.

    .venv/bin/python benchmarks/floors.py [--runs 5] [--nodes 1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiosqlite
import asyncpg
import redis.asyncio as aioredis
from qmbench.postgres_server import postgres_server
from qmbench.redis_server import redis_server

from quartermaster_engine import FlowRunner
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.testing import chain_graph

ROW = "x" * 200
#: The shape of a commit script: check a fence, write a value, return.
LUA = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end "
    "redis.call('SET', KEYS[1], ARGV[2]) return 0"
)

Timing = tuple[float, float]  # (wall µs, CPU µs) per operation


def _median(samples: list[Timing]) -> Timing:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def python_floor(runs: int, n: int = 200_000) -> Timing:
    d: dict[int, int] = {}

    def step(i: int) -> None:
        d[i] = i
        d.get(i - 1)
        d.pop(i - 1, None)

    out: list[Timing] = []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        for i in range(n):
            step(i)
        out.append(((time.perf_counter() - t) / n * 1e6, (time.process_time() - c) / n * 1e6))
    return _median(out)


async def _timed(op: Callable[[], Awaitable[object]], n: int, runs: int) -> Timing:
    for _ in range(min(n, 50)):  # warm-up: connections, statements, caches
        await op()
    out: list[Timing] = []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            await op()
        out.append(((time.perf_counter() - t) / n * 1e6, (time.process_time() - c) / n * 1e6))
    return _median(out)


async def await_floor(runs: int) -> Timing:
    async def nothing() -> None:
        return None

    return await _timed(nothing, 100_000, runs)


async def sqlite_floors(folder: Path, runs: int, n: int) -> dict[str, Timing]:
    out: dict[str, Timing] = {}
    for sync in ("NORMAL", "FULL"):
        async with aiosqlite.connect(folder / f"floor-{sync}.db", isolation_level=None) as db:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(f"PRAGMA synchronous={sync}")
            await db.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)")

            async def empty(db: aiosqlite.Connection = db) -> None:
                await db.execute("BEGIN IMMEDIATE")
                await db.execute("COMMIT")

            async def insert(db: aiosqlite.Connection = db) -> None:
                await db.execute("BEGIN IMMEDIATE")
                await db.execute("INSERT INTO t (v) VALUES (?)", (ROW,))
                await db.execute("COMMIT")

            out[f"sqlite {sync} empty transaction"] = await _timed(empty, n, runs)
            out[f"sqlite {sync} insert one row"] = await _timed(insert, n, runs)
    return out


async def redis_floors(url: str, runs: int, n: int) -> dict[str, Timing]:
    client = aioredis.Redis.from_url(url)
    try:
        sha = await client.script_load(LUA)

        async def ping() -> None:
            await client.ping()

        async def script() -> None:
            await client.evalsha(sha, 1, "floor", "fence", ROW)

        return {
            "redis PING": await _timed(ping, n, runs),
            "redis EVALSHA set one value": await _timed(script, n, runs),
        }
    finally:
        await client.aclose()


async def postgres_floors(dsn: str, runs: int, n: int) -> dict[str, Timing]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS floor_t (k BIGSERIAL PRIMARY KEY, v TEXT)")

        async def select() -> None:
            await conn.fetchval("SELECT 1")

        async def insert() -> None:
            await conn.execute("INSERT INTO floor_t (v) VALUES ($1)", ROW)

        return {
            "postgres SELECT 1": await _timed(select, n, runs),
            "postgres INSERT one row (fsync)": await _timed(insert, n, runs),
        }
    finally:
        await conn.close()


def pg_test_fsync(folder: Path) -> float | None:
    """Operations per second of one 8 kB write + fdatasync, from pg_test_fsync."""
    binary = shutil.which("pg_test_fsync") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_test_fsync"), reverse=True)), None
    )
    if binary is None:
        return None
    proc = subprocess.run(
        [binary, "-s", "2", "-f", str(folder / "fsync.test")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"^\s+fdatasync\s+([\d,.]+) ops/sec", proc.stdout, re.MULTILINE)
    return float(match.group(1).replace(",", "")) if match else None


def _noop(context: Any) -> NodeResult:
    return NodeResult(success=True, data={}, output_text="x")


def chain_per_node(store: Any, nodes: int, runs: int) -> Timing:
    """Our engine: a chain of ``nodes`` no-op nodes on ``store``, per node."""
    runner = FlowRunner(
        graph=chain_graph(nodes + 2),
        node_registry=SimpleNodeRegistry({"echo": _noop}),
        store=store,
    )
    runner.run("x")
    out: list[Timing] = []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        runner.run("x")
        out.append(
            ((time.perf_counter() - t) / nodes * 1e6, (time.process_time() - c) / nodes * 1e6)
        )
    return _median(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs, n = args.runs, args.nodes
    from qm_store_postgres import PostgresStore
    from qm_store_redis import RedisStore
    from qm_store_sqlite import SQLiteStore

    rows: dict[str, Timing] = {"python call + 3 dict ops": python_floor(runs)}
    rows["python await of a coroutine"] = asyncio.run(await_floor(runs))
    ours: dict[str, tuple[Timing, str]] = {}
    with tempfile.TemporaryDirectory(prefix="qm-floors-") as tmp:
        folder = Path(tmp)
        rows.update(asyncio.run(sqlite_floors(folder, runs, n)))
        ours["W3 SQLite NORMAL"] = (
            chain_per_node(SQLiteStore(path=folder / "w3.db"), n, runs),
            "sqlite NORMAL insert one row",
        )
        ours["W3 SQLite FULL"] = (
            chain_per_node(SQLiteStore(path=folder / "w3f.db", synchronous="FULL"), n, runs),
            "sqlite FULL insert one row",
        )
        fsync_rate = pg_test_fsync(folder)
    with redis_server() as url:
        rows.update(asyncio.run(redis_floors(url, runs, n)))
        ours["W5 Redis"] = (
            chain_per_node(RedisStore(url=url), n, runs),
            "redis EVALSHA set one value",
        )
    with postgres_server() as dsn:
        rows.update(asyncio.run(postgres_floors(dsn, runs, n)))
        ours["W3p PostgreSQL"] = (
            chain_per_node(PostgresStore(dsn=dsn), n, runs),
            "postgres INSERT one row (fsync)",
        )
    load = os.getloadavg()[0]
    if args.json:
        print(
            json.dumps(
                {
                    "floors_us": {k: {"wall": w, "cpu": c} for k, (w, c) in rows.items()},
                    "ours_us_per_node": {
                        k: {"wall": w, "cpu": c, "floor": f} for k, ((w, c), f) in ours.items()
                    },
                    "pg_test_fsync_ops_per_s": fsync_rate,
                    "load_average": load,
                }
            )
        )
        return
    print(f"Floors on this machine (median of {runs} runs; load average {load:.1f}):")
    for key, (wall, cpu) in rows.items():
        print(f"  {key:36} {wall:9.2f} µs ({cpu:.2f} CPU)")
    if fsync_rate:
        print(
            f"  {'pg_test_fsync one-write fdatasync':36} {1e6 / fsync_rate:9.2f} µs "
            f"({fsync_rate:,.0f}/s)"
        )
    print(f"Our durable chains, {n} no-op nodes, per node, beside the floor of one commit:")
    for key, ((wall, cpu), floor_key) in ours.items():
        floor = rows[floor_key][0]
        print(
            f"  {key:18} {wall:8.1f} µs ({cpu:.1f} CPU)   floor {floor:7.1f} µs   "
            f"{wall / floor:4.1f}x the floor, {wall - floor:6.1f} µs above it"
        )


if __name__ == "__main__":
    main()

"""What budgets and limits per key cost per activation (issue #28), same sitting.

Durable chains of N no-op nodes on SQLite (W3's store) and Redis (W5's store, a
private redis-server), each variant the median of ``--runs`` flows after one
untimed flow, in microseconds per node (and on Redis, the scripts the server
ran per node: store round trips that write, whatever the machine's load):

- ``plain``: no ``[budgets]``, no ``[limits."<key>"]`` tables;
- ``limits, no key``: a key table configured, the nodes declare no key;
- ``budgets``: ``max_node_runs`` and ``max_tokens`` set (never reached);
- ``limited key``: every node declares ``limit_keys = ["bench"]`` and
  ``[limits.bench] max_in_flight = 8``: a slot taken per node (one store round
  trip) and given back by the node's commit (none of its own);
- ``tokens, no key``: a ``max_tokens`` table configured, the nodes declare no key
  (each commit asks whether its node has a key limiting tokens);
- ``tokens key``: every node declares ``bench``, ``[limits.bench] max_tokens``
  (never reached): the window is read before each node starts (one store round
  trip; the no-op nodes report no tokens, so nothing is counted);
- ``key budget, no key``: a ``[budgets.bench]`` table, the nodes declare no key;
- ``key budget``: every node declares ``bench`` with ``[budgets.bench]
  max_node_runs`` (never reached): the key's usage is read before each node
  starts (one store round trip) and added to by its commit (no round trip of
  its own).

    .venv/bin/python benchmarks/limits_cost.py [--size 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
from qmbench.redis_server import redis_server

from qm_store_redis import RedisStore
from qm_store_sqlite import SQLiteStore
from quartermaster_engine import Engine
from quartermaster_engine.budgets import BudgetsConfig
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.runner.key_limits import Rule
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing.graphs import chain_graph


def _noop(ctx: Any) -> NodeResult:
    return NodeResult(output_text="ok")


def _graph(size: int, keyed: bool) -> Any:
    graph = chain_graph(size + 2)
    if keyed:
        for node in graph.nodes:
            node.metadata["limit_keys"] = ["bench"]
    return graph


VARIANTS: dict[str, dict[str, Any]] = {
    "limits, no key": {"key_limits": {"llm:*": 8}},
    "budgets": {"budgets": BudgetsConfig(max_node_runs=10**9, max_tokens=10**12)},
    "limited key": {"key_limits": {"bench": 8}, "keyed": True},
    "tokens, no key": {"key_limits": {"llm:*": Rule(max_tokens=10**12)}},
    "tokens key": {"key_limits": {"bench": Rule(max_tokens=10**12)}, "keyed": True},
    "key budget, no key": {
        "budgets": BudgetsConfig.model_validate({"bench": {"max_node_runs": 10**12}})
    },
    "key budget": {
        "budgets": BudgetsConfig.model_validate({"bench": {"max_node_runs": 10**12}}),
        "keyed": True,
    },
}


async def _measure(store: Any, size: int, runs: int, variant: dict[str, Any]) -> float:
    options = dict(variant)
    keyed = options.pop("keyed", False)
    graph = _graph(size, keyed)
    registry = SimpleNodeRegistry({"echo": _noop})
    async with Engine(store=store, registry=registry, **options) as engine:
        first = await engine.run(graph, "go")
        assert first.status is FlowStatus.COMPLETED, first.error
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            result = await engine.run(graph, "go")
            walls.append(time.perf_counter() - start)
            assert result.status is FlowStatus.COMPLETED, result.error
    return statistics.median(walls) / (size + 2) * 1e6


def _scripts(url: str) -> int:
    """Scripts the Redis server has run so far (EVALSHA and EVAL calls, ``INFO
    commandstats``): each is one round trip of the store, and the commands run
    inside them do not count."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="variants to measure (plain always)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, redis_server() as url:
        # Plain first and last: the spread between them is the sitting's noise.
        chosen = [(n, v) for n, v in VARIANTS.items() if not args.only or n in args.only]
        for name, variant in [("plain", {}), *chosen, ("plain again", {})]:
            sqlite = SQLiteStore(Path(tmp) / f"{uuid.uuid4().hex}.db")
            us = asyncio.run(_measure(sqlite, args.size, args.runs, variant))
            asyncio.run(sqlite.close())
            rows.append({"store": "sqlite (W3)", "variant": name, "us_per_node": round(us, 1)})
            on_redis = RedisStore(url, key_prefix=uuid.uuid4().hex[:8])
            before = _scripts(url)
            us = asyncio.run(_measure(on_redis, args.size, args.runs, variant))
            # Round trips, not time: scripts the server ran per node (every flow's).
            scripts = (_scripts(url) - before) / ((args.runs + 1) * (args.size + 2))
            asyncio.run(on_redis.close())
            rows.append(
                {
                    "store": "redis (W5)",
                    "variant": name,
                    "us_per_node": round(us, 1),
                    "scripts_per_node": round(scripts, 2),
                }
            )
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()

"""Several processes on one server, a server that dies mid-run, unreachable servers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from qm_redis_support import RedisServer, free_port, store_for, unique_prefix

from qm_store_redis import RedisSettings, RedisStore, RedisUnavailableError
from quartermaster_engine import FlowRunner
from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing import call, chain_graph
from quartermaster_engine.testing.crash import expected_output
from quartermaster_engine.testing.graphs import name_id

WORKER = Path(__file__).with_name("qm_redis_crash_worker.py")


def test_two_processes_drive_different_flows_at_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    flows = {shape: uuid4() for shape in ("chain", "fanout")}
    procs = {
        shape: subprocess.Popen(
            [
                *(sys.executable, str(WORKER), redis_server.url, prefix, "run", shape),
                *(str(flow_id), str(tmp_path / f"{shape}.txt")),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for shape, flow_id in flows.items()
    }
    outputs = {shape: proc.communicate(timeout=120) for shape, proc in procs.items()}
    store = store_for(redis_server, prefix)
    try:
        for shape, (out, err) in outputs.items():
            assert procs[shape].returncode == 0, err
            assert json.loads(out) == {
                "status": "completed",
                "final_output": expected_output(shape),
            }
            lines = Counter((tmp_path / f"{shape}.txt").read_text().split())
            assert set(lines.values()) == {1}
            assert len(lines) == (298 if shape == "chain" else 51)
            snap = call(store, "load_flow", flows[shape])
            assert snap.flow.status is FlowStatus.COMPLETED
            assert len(snap.records) == (300 if shape == "chain" else 53)
        listed = call(store, "list_flows")
        assert sorted(r.flow_id for r in listed) == sorted(flows.values())
    finally:
        call(store, "close")


def test_server_killed_mid_run_fails_clearly_then_recover_completes(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "aof", appendonly=True).start()
    ran: list[str] = []

    def work(ctx: Any) -> NodeResult:
        name = ctx.current_node.name
        ran.append(name)
        if name == "n10" and ran.count("n10") == 1:
            server.kill()  # the server vanishes while n10 runs; its commit cannot land
        return NodeResult(output_text=f"{name}({ctx.input_text})")

    store = store_for(server, unique_prefix(), timeout_seconds=2)
    try:
        runner = FlowRunner(chain_graph(40), SimpleNodeRegistry({"echo": work}), store=store)
        failed = runner.run("in")
        assert failed.status is FlowStatus.FAILED
        assert failed.error is not None
        assert failed.error.startswith(
            f"the store (redis {server.url}) failed while committing flow {failed.flow_id}: "
            f"RedisUnavailableError: Redis server {server.url} is unavailable: "
        )
        assert ran == [f"n{i}" for i in range(11)]

        server.start()  # same port, same append-only file
        done = runner.recover(failed.flow_id)
        assert done.status is FlowStatus.COMPLETED
        out = "in"
        for i in range(38):
            out = f"n{i}({out})"
        assert done.final_output == out
        # Only n10, whose commit was lost with the server, ran twice.
        assert ran == [f"n{i}" for i in range(11)] + [f"n{i}" for i in range(10, 38)]
        snap = call(store, "load_flow", failed.flow_id)
        assert len(snap.records) == 40
    finally:
        call(store, "close")
        server.stop()


def test_frozen_server_times_out_instead_of_hanging(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "frozen").start()
    ran: list[str] = []

    def work(ctx: Any) -> NodeResult:
        name = ctx.current_node.name
        ran.append(name)
        if name == "n5" and ran.count("n5") == 1:
            assert server.proc is not None
            server.proc.send_signal(signal.SIGSTOP)  # alive but silent, like a partition
        return NodeResult(output_text=f"{name}({ctx.input_text})")

    store = store_for(server, unique_prefix(), timeout_seconds=0.5)
    runner = FlowRunner(chain_graph(12), SimpleNodeRegistry({"echo": work}), store=store)
    try:
        started = time.monotonic()
        failed = runner.run("in")
        assert time.monotonic() - started < 5
        assert failed.status is FlowStatus.FAILED
        assert failed.error == (
            f"the store (redis {server.url}) failed while committing flow {failed.flow_id}: "
            f"RedisUnavailableError: Redis server {server.url} is unavailable: "
            "no reply within 0.5 s"
        )
        assert server.proc is not None
        server.proc.send_signal(signal.SIGCONT)
        # The commit sent before the freeze may still have landed once the server
        # woke up: it was never retried, so n5 ran again only if it did not.
        snap = call(store, "load_flow", failed.flow_id)
        landed = any(r.node_id == name_id("n5") for r in snap.records)
        done = runner.recover(failed.flow_id)
        assert (done.status, done.final_output) == (FlowStatus.COMPLETED, _nested(10))
        again = [] if landed else ["n5"]
        assert ran == [f"n{i}" for i in range(6)] + again + [f"n{i}" for i in range(6, 10)]
    finally:
        call(store, "close")
        server.stop()


def _nested(count: int) -> str:
    out = "in"
    for i in range(count):
        out = f"n{i}({out})"
    return out


def _noop(ctx: Any) -> NodeResult:
    return NodeResult(output_text="ok")


def test_refused_connection_names_the_server() -> None:
    port = free_port()  # nothing listens there
    url = f"redis://127.0.0.1:{port}/0"
    store = RedisStore(url, timeout_seconds=2)
    runner = FlowRunner(chain_graph(3), SimpleNodeRegistry({"echo": _noop}), store=store)
    with pytest.raises(RedisUnavailableError) as caught:
        runner.run("in")
    assert str(caught.value).startswith(
        f"Redis server {url} is unavailable (Connection refused): "
        f"Error 111 connecting to 127.0.0.1:{port}. "
    )
    with pytest.raises(RedisUnavailableError, match=f"Redis server {url} is unavailable"):
        call(store, "ping")
    call(store, "close")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://localhost:6379/0", "Redis URL must specify one of the following schemes"),
        ("redis://localhost:port/0", "Port could not be cast to integer value as 'port'"),
        ("redis://localhost:6379/zero", "database 'zero' is not a number"),
    ],
)
def test_bad_url_is_refused_before_anything_runs(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"^invalid Redis URL '{url}': ") as caught:
        RedisStore(url)
    assert problem in str(caught.value)
    with pytest.raises(ValueError, match=f"invalid Redis URL '{url}'"):
        RedisSettings(url=url)


def test_password_is_hidden_in_descriptions() -> None:
    store = RedisStore("redis://agent:s3cret@db.internal:6390/2")
    assert store.describe() == "redis redis://agent:***@db.internal:6390/2"
    assert "s3cret" not in repr(store)


def test_a_password_in_the_query_is_hidden_when_the_server_is_unavailable() -> None:
    port = free_port()  # nothing listens there
    store = RedisStore(f"redis://127.0.0.1:{port}/0?password=hunter2", timeout_seconds=2)
    with pytest.raises(RedisUnavailableError) as caught:
        call(store, "ping")
    assert str(caught.value).startswith(
        f"Redis server redis://127.0.0.1:{port}/0?password=*** is unavailable "
        "(Connection refused): "
    )
    assert "hunter2" not in str(caught.value) + repr(store)
    call(store, "close")

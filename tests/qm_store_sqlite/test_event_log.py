"""The durable event log read and followed from another process (`qm flows events`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner, FlowStatus, NodeResult, SimpleNodeRegistry
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.events import FlowEvent
from quartermaster_engine.runner.event_log import read_log
from quartermaster_engine.stores.adapter import StoreAdapter
from quartermaster_engine.testing import build_graph

QM = Path(sys.executable).with_name("qm")


def _ask(ctx: ExecutionContext) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="Approve?")
    return NodeResult(output_text=ctx.user_input)


GRAPH = build_graph(
    {"Start": "Start1", "Ask": "ask", "End": "End1"}, [("Start", "Ask"), ("Ask", "End")]
)


def _read_lines(proc: subprocess.Popen[str], count: int, timeout: float = 30.0) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        assert time.monotonic() < deadline, f"only {lines} after {timeout} s"
        line = proc.stdout.readline()
        assert line, f"the follower ended early: {proc.stderr.read() if proc.stderr else ''}"
        lines.append(line)
    return lines


def test_a_follower_in_another_process_sees_every_event_until_the_flow_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QM_LOAD_PLUGINS", "qm-store-sqlite")
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    store = SQLiteStore(tmp_path / "flows.db")
    runner = FlowRunner(GRAPH, SimpleNodeRegistry({"ask": _ask}), store=store)
    paused = runner.run("ship it")
    assert paused.status is FlowStatus.PAUSED
    follower = subprocess.Popen(
        [str(QM), "flows", "events", str(paused.flow_id), "--follow", "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"QM_LOAD_PLUGINS": "qm-store-sqlite", "PATH": "/usr/bin:/bin"},
    )
    try:
        before = [json.loads(line)["type"] for line in _read_lines(follower, 6)]
        assert before == [
            "FlowStarted",
            "NodeStarted",
            "NodeFinished",
            "NodeStarted",
            "UserInputRequired",
            "FlowPaused",
        ]
        done = runner.resume(paused.flow_id, "yes")
        assert done.status is FlowStatus.COMPLETED
        after = [json.loads(line) for line in _read_lines(follower, 6)]
        assert [e["type"] for e in after] == [
            "FlowResumed",
            "NodeStarted",
            "NodeFinished",
            "NodeStarted",
            "NodeFinished",
            "FlowFinished",
        ]
        assert [e["seq"] for e in after] == list(range(7, 13))
        assert follower.wait(timeout=30) == 0  # it stops by itself once the flow ended
    finally:
        follower.kill()
        follower.wait()


def test_the_log_reads_back_what_listeners_heard(tmp_path: Path) -> None:
    asyncio.run(_read_back(tmp_path))


async def _read_back(tmp_path: Path) -> None:
    heard: list[FlowEvent] = []
    store = SQLiteStore(tmp_path / "flows.db")
    try:
        runner = FlowRunner(
            GRAPH, SimpleNodeRegistry({"ask": _ask}), store=store, on_event=heard.append
        )
        paused = await runner.arun("ship it")
        await runner.aresume(paused.flow_id, "yes")
        logged = [e async for e in runner.events(paused.flow_id)]
        assert [e.to_dict() for e in logged] == [e.to_dict() for e in heard]
        tail = [e async for e in read_log(StoreAdapter(store), paused.flow_id, after=10)]
        assert [e.seq for e in tail] == [11, 12]
    finally:
        await store.close()

"""Resume and recover run the same pre-flight as run: a process that lacks an executor
the flow needs refuses before touching the flow, which stays recoverable elsewhere."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from click.testing import CliRunner
from sqlite_support import graph_named, registry, start_worker, wait_for, worker

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import FlowRunner, SimpleNodeRegistry, UnknownNodeTypeError
from quartermaster_engine.cli import main
from quartermaster_engine.stores.records import FlowStatus


def _state(db: Path, flow_id: UUID) -> Any:
    """What the store holds of the flow, comparable before and after."""

    async def read() -> Any:
        store = SQLiteStore(db)
        try:
            snap = await store.load_flow(flow_id)
        finally:
            await store.close()
        assert snap is not None
        return (
            snap.flow.status,
            snap.flow.updated_at,
            snap.flow.event_seq,
            sorted((r.node_id, r.visit, r.attempt, r.status.value) for r in snap.records),
            sorted((a.node_id, a.visit, a.attempt, a.waiting) for a in snap.pending),
            snap.memory,
        )

    return asyncio.run(read())


def _killed_mid_chain(tmp_path: Path) -> tuple[Path, UUID]:
    """A 6-node chain of ``work`` nodes whose process was SIGKILLed at its third node."""
    db, side, flow_id = tmp_path / "flows.db", tmp_path / "side.log", uuid4()
    args = {"db": str(db), "side": str(side), "graph": "chain", "size": 6}
    proc = start_worker("run", flow_id=str(flow_id), input="in", stall_at=3, **args)
    try:
        wait_for(lambda: side.exists() and side.read_bytes().count(b"\n") >= 3, 120, "line 3")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    return db, flow_id


def _missing(graph: Any) -> str:
    node = next(n for n in graph.nodes if n.name == "n0")
    return (
        f"graph {graph.name} uses node types with no executor:\n"
        f"  no executor for node type 'work' (node 'n0' ({node.id})); "
    )


def test_recover_without_the_executor_refuses_and_leaves_the_flow_recoverable(
    tmp_path: Path,
) -> None:
    db, flow_id = _killed_mid_chain(tmp_path)
    before = _state(db, flow_id)
    assert before[0] is FlowStatus.RUNNING
    graph = graph_named("chain", 6)
    lacking = FlowRunner(graph, SimpleNodeRegistry({"ask": lambda c: "x"}), store=SQLiteStore(db))
    with pytest.raises(UnknownNodeTypeError) as info:
        lacking.recover(flow_id)
    assert str(info.value).startswith(_missing(graph))
    assert _state(db, flow_id) == before
    done = FlowRunner(graph, registry(), store=SQLiteStore(db)).recover(flow_id)
    assert done.status is FlowStatus.COMPLETED
    assert done.final_output == "n3(n2(n1(n0(in))))"


def test_resume_without_the_executor_refuses_and_leaves_the_flow_paused(tmp_path: Path) -> None:
    db, flow_id = tmp_path / "flows.db", uuid4()
    paused = worker("pause", db=str(db), graph="ask", flow_id=str(flow_id), input="in")
    assert paused["status"] == "paused"
    before = _state(db, flow_id)
    graph = graph_named("ask", 0)
    lacking = FlowRunner(graph, SimpleNodeRegistry({"ask": lambda c: "x"}), store=SQLiteStore(db))
    with pytest.raises(UnknownNodeTypeError) as info:
        lacking.resume(flow_id, "yes")
    after_node = next(n for n in graph.nodes if n.name == "After")
    assert str(info.value).startswith(
        f"graph {graph.name} uses node types with no executor:\n"
        f"  no executor for node type 'work' (node 'After' ({after_node.id})); "
    )
    assert _state(db, flow_id) == before
    done = worker("resume", db=str(db), graph="ask", flow_id=str(flow_id), answer="yes")
    assert (done["status"], done["final_output"]) == ("completed", "After(answer=yes)")


def test_qm_recover_from_a_process_without_the_executor_exits_1_naming_the_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, flow_id = _killed_mid_chain(tmp_path)
    before = _state(db, flow_id)
    (tmp_path / "qm.toml").write_text(f'[store]\nname = "sqlite"\npath = "{db}"\n')
    monkeypatch.chdir(tmp_path)
    for var in ("QM_STORE", "QM_DISPATCHER", "QM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(main, ["recover", str(flow_id), "--config", "qm.toml"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: " + _missing(graph_named("chain", 6)))
    assert "Traceback" not in result.stderr
    assert _state(db, flow_id) == before

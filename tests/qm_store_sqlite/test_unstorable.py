"""What the SQLite store cannot keep fails the flow for good, recorded so; an executor's
own CancelledError is recorded failed, not completed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from qm_store_sqlite import SQLiteStore
from quartermaster_engine import (
    AsyncDispatcher,
    ExecutionContext,
    FlowRunner,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.stores.records import FlowStatus
from quartermaster_engine.testing import build_graph


def _graph() -> Any:
    return build_graph(
        {"Start": "Start1", "A": "produce", "B": "after", "End": "End1"},
        [("Start", "A"), ("A", "B"), ("B", "End")],
    )


def _stored_status(path: Path, flow_id: Any) -> tuple[FlowStatus, str | None]:
    async def read() -> Any:
        store = SQLiteStore(path)
        try:
            return await store.get_flow(flow_id)
        finally:
            await store.close()

    record = asyncio.run(read())
    return record.status, record.error


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (
            lambda: NodeResult(output_text="ok", data={"v": 10**5000}),
            "Exceeds the limit (4300 digits) for integer string conversion",
        ),
        (
            lambda: NodeResult(output_text="ok", data={"memory_updates": {"v": 10**5000}}),
            "Exceeds the limit (4300 digits) for integer string conversion",
        ),
        (
            lambda: NodeResult(output_text="bad \ud800 text"),
            "'utf-8' codec can't encode character '\\ud800' in position 4: surrogates not allowed",
        ),
        (
            lambda: NodeResult(output_text="ok", data={"k": "\udcff"}),
            "'utf-8' codec can't encode character '\\udcff'",
        ),
    ],
    ids=["huge-int-data", "huge-int-memory", "surrogate-output", "surrogate-data"],
)
def test_unstorable_output_fails_the_flow_once_and_for_all(
    tmp_path: Path, make: Any, problem: str
) -> None:
    path = tmp_path / "flows.db"
    runs: list[str] = []

    def produce(ctx: ExecutionContext) -> NodeResult:
        runs.append("A")
        return make()

    registry = SimpleNodeRegistry({"produce": produce, "after": lambda c: runs.append("B")})
    runner = FlowRunner(_graph(), registry, store=SQLiteStore(path))
    result = runner.run("x")
    assert result.status is FlowStatus.FAILED
    assert result.error is not None
    node = f"node 'A' ({_graph().nodes[1].id})"
    prefix = f"{node} produced data the store (sqlite {path}) cannot save: "
    assert result.error.startswith(prefix)
    assert problem in result.error
    status, error = _stored_status(path, result.flow_id)
    assert (status, error) == (FlowStatus.FAILED, result.error)
    # Recover leaves the failed flow as it is: the executor does not run again.
    again = FlowRunner(_graph(), registry, store=SQLiteStore(path)).recover(result.flow_id)
    assert again.status is FlowStatus.FAILED
    assert runs == ["A"]


def test_an_executors_cancelled_error_is_recorded_failed(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"

    async def cancel(ctx: ExecutionContext) -> NodeResult:
        raise asyncio.CancelledError

    registry = SimpleNodeRegistry({"produce": cancel, "after": lambda c: "never"})
    runner = FlowRunner(_graph(), registry, store=SQLiteStore(path), dispatcher=AsyncDispatcher())
    result = runner.run("x")
    assert result.status is FlowStatus.FAILED
    status, error = _stored_status(path, result.flow_id)
    assert status is FlowStatus.FAILED
    assert error == (
        f"node 'A' ({_graph().nodes[1].id}): its executor raised CancelledError, but the flow "
        "was not stopped"
    )

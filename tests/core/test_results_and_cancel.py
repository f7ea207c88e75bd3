"""False successes: an executor's CancelledError without a stop is a node failure, and a
NodeResult with fields of the wrong type fails its node naming the field."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support import build, node_id

from quartermaster_engine import (
    AsyncDispatcher,
    ExecutionContext,
    FlowRunner,
    NodeResult,
    SimpleNodeRegistry,
    SyncDispatcher,
)
from quartermaster_engine.stores.records import FlowStatus


def _graph(strategy: str = "Stop") -> Any:
    return build(
        {
            "Start": "Start1",
            "A": {"type": "boom", "error_handling": strategy},
            "B": "after",
            "End": "End1",
        },
        [("Start", "A"), ("A", "B"), ("B", "End")],
    )


async def _cancel_async(ctx: ExecutionContext) -> NodeResult:
    raise asyncio.CancelledError


def _cancel_blocking(ctx: ExecutionContext) -> NodeResult:
    raise asyncio.CancelledError


def _dispatchers() -> list[Any]:
    from qm_dispatch_thread import ThreadDispatcher

    return [SyncDispatcher, AsyncDispatcher, lambda: ThreadDispatcher(max_workers=2)]


@pytest.mark.parametrize("make", _dispatchers(), ids=["sync", "async", "thread"])
@pytest.mark.parametrize("boom", [_cancel_async, _cancel_blocking], ids=["async-def", "def"])
def test_an_executors_own_cancelled_error_fails_the_node(make: Any, boom: Any) -> None:
    ran: list[str] = []
    registry = SimpleNodeRegistry({"boom": boom, "after": lambda c: ran.append("B") or "b"})
    result = FlowRunner(_graph(), registry, dispatcher=make()).run("x")
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'A' ({node_id('A')}): its executor raised CancelledError, but the flow "
        "was not stopped"
    )
    assert ran == []


def test_the_error_strategy_applies_to_an_executors_cancelled_error() -> None:
    registry = SimpleNodeRegistry({"boom": _cancel_async, "after": lambda c: f"B({c.input_text})"})
    result = FlowRunner(_graph("Skip"), registry, dispatcher=AsyncDispatcher()).run("x")
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == "B(x)"


def test_a_real_stop_still_ends_the_flow_stopped() -> None:
    async def main() -> Any:
        started = asyncio.Event()

        async def slow(ctx: ExecutionContext) -> NodeResult:
            started.set()
            await asyncio.sleep(60)
            return NodeResult(output_text="never")

        runner = FlowRunner(
            _graph(),
            SimpleNodeRegistry({"boom": slow, "after": lambda c: "b"}),
            dispatcher=AsyncDispatcher(),
        )
        task = asyncio.ensure_future(runner.arun("x"))
        await started.wait()
        runner.stop(runner.active_flows[0])
        return await task

    result = asyncio.run(main())
    assert result.status is FlowStatus.STOPPED


@pytest.mark.parametrize(
    ("returned", "problem"),
    [
        (NodeResult(data="x"), "data is str ('x'); expected a dict"),
        (NodeResult(output_text=123), "output_text is int (123); expected a str or None"),  # type: ignore[arg-type]
        (NodeResult(success="yes"), "success is str ('yes'); expected a bool"),  # type: ignore[arg-type]
        (NodeResult(picked_node=5), "picked_node is int (5); expected a str or None"),  # type: ignore[arg-type]
        (
            NodeResult(wait_for_user=True, user_options=["a", 2]),  # type: ignore[list-item]
            "user_options is ['a', 2]; expected a list of str or None",
        ),
    ],
)
@pytest.mark.parametrize("make", [SyncDispatcher, AsyncDispatcher], ids=["sync", "async"])
def test_a_node_result_with_a_wrong_field_fails_the_node_naming_it(
    returned: NodeResult, problem: str, make: Any
) -> None:
    ran: list[str] = []
    registry = SimpleNodeRegistry({"boom": lambda c: returned, "after": lambda c: ran.append("B")})
    result = FlowRunner(_graph(), registry, dispatcher=make()).run("x")
    assert result.status is FlowStatus.FAILED
    assert result.error == f"node 'A' ({node_id('A')}) returned a NodeResult whose {problem}"
    assert ran == []

"""The public API names a wrong argument at the call."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from support import build

from quartermaster_engine import ExecutionContext, FlowRunner, NodeResult, SimpleNodeRegistry
from quartermaster_engine.stores.records import FlowStatus


def _ask(ctx: ExecutionContext) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="?")
    return NodeResult(output_text=ctx.user_input)


def _runner() -> FlowRunner:
    graph = build({"Start": "Start1", "Q": "ask", "End": "End1"}, [("Start", "Q"), ("Q", "End")])
    return FlowRunner(graph, SimpleNodeRegistry({"ask": _ask}))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r, f: r.resume("bad-id", "x"), ValueError, "flow_id 'bad-id' is not a UUID"),
        (lambda r, f: r.stop("zzz"), ValueError, "flow_id 'zzz' is not a UUID"),
        (lambda r, f: r.run("x", flow_id="abc"), ValueError, "flow_id 'abc' is not a UUID"),
        (
            lambda r, f: r.run("x", flow_id=5),
            TypeError,
            "flow_id must be a UUID or its string form, got int",
        ),
        (
            lambda r, f: r.recover(3.5),
            TypeError,
            "flow_id must be a UUID or its string form, got float",
        ),
        (lambda r, f: r.get_result("nope"), ValueError, "flow_id 'nope' is not a UUID"),
        (lambda r, f: r.resume(f, None), TypeError, "user_input must be a str, got NoneType"),
        (lambda r, f: r.resume(f, 5), TypeError, "user_input must be a str, got int"),
        (
            lambda r, f: r.resume(f, "x", node_id=7),
            TypeError,
            "node_id must be a node's UUID, its name or id as a str, or None; got int",
        ),
        (lambda r, f: r.run(None), TypeError, "input_message must be a str, got NoneType"),
    ],
)
def test_a_wrong_argument_is_named(call: Any, error: type[Exception], message: str) -> None:
    runner = _runner()
    paused = runner.run("hi")
    assert paused.status is FlowStatus.PAUSED
    with pytest.raises(error) as info:
        call(runner, paused.flow_id)
    assert type(info.value) is error
    assert str(info.value) == message
    # Nothing happened to the paused flow: it still takes its answer.
    assert runner.resume(paused.flow_id, "answer").final_output == "answer"


def test_a_flow_id_may_be_given_as_its_string() -> None:
    runner = _runner()
    fid = uuid4()
    paused = runner.run("hi", flow_id=str(fid))  # type: ignore[arg-type]
    assert paused.flow_id == fid
    assert runner.resume(str(fid), "yes").final_output == "yes"  # type: ignore[arg-type]

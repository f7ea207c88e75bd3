"""``engine.update(flow_id, messages=[...])`` on every store kind: the waiting node
of a paused flow, or the node that failed a failed flow, runs next with the
edited input messages; the edit is an event and a checkpoint."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from quartermaster_engine import (
    Engine,
    ExecutionContext,
    FlowStatus,
    NodeResult,
    SimpleNodeRegistry,
)
from quartermaster_engine.events import FlowEdited
from quartermaster_engine.runner import FlowStateError
from quartermaster_engine.testing.graphs import build_graph

StoreFactory = Callable[[], Any]


def _said(ctx: ExecutionContext) -> str:
    return " | ".join(f"{m.role.value}:{m.content}" for m in ctx.messages)


def _ask(ctx: ExecutionContext) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="Name?")
    return NodeResult(output_text=_said(ctx))


def _fragile(ctx: ExecutionContext) -> NodeResult:
    if not ctx.memory.get("fixed"):
        return NodeResult(success=False, error="not fixed")
    return NodeResult(output_text=_said(ctx))


def _registry() -> SimpleNodeRegistry:
    reg = SimpleNodeRegistry()
    reg.register("ask", _ask)
    reg.register("fragile", _fragile)
    return reg


ASK = build_graph(
    {"Start": "Start1", "Ask": {"type": "ask", "message_type": "User"}, "End": "End1"},
    [("Start", "Ask"), ("Ask", "End")],
)
FRAGILE = build_graph(
    {"Start": "Start1", "F": "fragile", "End": "End1"}, [("Start", "F"), ("F", "End")]
)
EDITED = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "edited"}]


def test_a_paused_flow_s_waiting_node_runs_with_the_edited_messages(
    stores: StoreFactory,
) -> None:
    async def go() -> tuple[Any, Any, int, list[Any], list[Any]]:
        async with Engine(stores(), registry=_registry()) as engine:
            paused = await engine.run(ASK, "hi")
            fid = paused.flow_id
            unedited = await engine.fork(fid)
            seq = await engine.update(fid, messages=EDITED)
            done = await engine.resume(fid, "Bob")
            plain = await engine.resume(unedited, "Bob")
            events = await engine.store_adapter.read_events(fid)
            return done, plain, seq, await engine.history(fid), events

    done, plain, seq, history, events = asyncio.run(go())
    assert (done.status, done.final_output) == (
        FlowStatus.COMPLETED,
        "system:Be kind. | user:edited",
    )
    assert plain.final_output == "user:Bob"  # a flow without the edit
    assert seq == 3
    assert [(c.node_name, c.outcome) for c in history] == [
        ("Start", "finished"),
        ("Ask", "waiting_user"),
        ("Ask", "edited"),
        ("Ask", "finished"),
        ("End", "finished"),
    ]
    assert [m.to_dict() for m in history[2].messages] == EDITED
    edits = [e for e in events if isinstance(e, FlowEdited)]
    assert [(e.messages, e.memory) for e in edits] == [(EDITED, {})]


def test_a_failed_flow_s_node_is_retried_with_the_edited_messages_and_memory(
    stores: StoreFactory,
) -> None:
    async def go() -> tuple[Any, Any]:
        async with Engine(stores(), registry=_registry()) as engine:
            failed = await engine.run(FRAGILE, "hi")
            assert failed.status is FlowStatus.FAILED
            await engine.update(failed.flow_id, memory={"fixed": True}, messages=EDITED, node="F")
            retried = await engine.retry(failed.flow_id)
            # Consumed: a later fork of the retried flow does not see the edit again.
            return retried, await engine.history(failed.flow_id)

    retried, history = asyncio.run(go())
    assert retried.final_output == "system:Be kind. | user:edited"
    assert [(c.node_name, c.attempt, c.outcome) for c in history] == [
        ("Start", 1, "finished"),
        ("F", 1, "failed"),
        ("F", 0, "edited"),
        ("F", 2, "finished"),
        ("End", 1, "finished"),
    ]
    assert dict(history[2].memory) == {"fixed": True}


def test_message_edits_are_refused_with_named_errors(stores: StoreFactory) -> None:
    gate = threading.Event()

    def slow(ctx: ExecutionContext) -> NodeResult:
        gate.wait(30)
        return NodeResult(output_text="late")

    async def go() -> list[str]:
        reg = _registry()
        reg.register("slow", slow)
        slow_graph = build_graph(
            {"Start": "Start1", "S": "slow", "End": "End1"}, [("Start", "S"), ("S", "End")]
        )
        out: list[str] = []
        async with Engine(stores(), registry=reg) as engine:
            paused = await engine.run(ASK, "hi")
            for kwargs in ({"messages": []}, {"messages": [{"content": "x"}]}, {}):
                with pytest.raises(ValueError) as bad:
                    await engine.update(paused.flow_id, **kwargs)
                out.append(str(bad.value))
            with pytest.raises(FlowStateError) as wrong_node:
                await engine.update(paused.flow_id, messages=EDITED, node="Start")
            out.append(str(wrong_node.value))
            stopped = await engine.run(ASK, "hi")
            await engine.stop(stopped.flow_id)
            with pytest.raises(FlowStateError) as stop:
                await engine.update(stopped.flow_id, messages=EDITED)
            out.append(str(stop.value).replace(str(stopped.flow_id), "FLOW"))
            running = await engine.start(slow_graph, "hi")
            try:
                with pytest.raises(FlowStateError) as busy:
                    await engine.update(running, messages=EDITED)
                out.append(str(busy.value).replace(str(running), "FLOW"))
            finally:
                gate.set()
                await engine.result(running, wait=True)
            out[3] = out[3].replace(str(paused.flow_id), "FLOW")
        return out

    assert asyncio.run(go()) == [
        "messages must be a non-empty list of messages, got []",
        "each message must be a Message or a dict with 'role' (system, user, assistant, "
        "tool) and 'content'; got {'content': 'x'}",
        "nothing to edit: give memory={...} and/or messages=[...]",
        "node 'Start' of flow FLOW is not the node waiting: 'Ask'",
        "flow FLOW is stopped; messages can be edited only in a paused flow (for its "
        "waiting node) or a failed one (for the node that failed it): a stopped flow "
        "runs no node again",
        "flow FLOW is running in this process; editing a flow waits for it",
    ]

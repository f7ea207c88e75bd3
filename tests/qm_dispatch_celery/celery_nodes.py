"""Node executors the test workers load with ``qm worker -p celery_nodes``.

Each run appends ``<event> <pid> <flow id> <node> <visit> <attempt> <time>`` to the
file ``$QM_TEST_SIDE`` (one write per line, O_APPEND: lines from many
processes never interleave), so tests see which process ran what, how often.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.nodes import NodeResult
from quartermaster_engine.plugins import Register, hookimpl


def note(ctx: ExecutionContext, event: str = "ran") -> None:
    line = (
        f"{event} {os.getpid()} {ctx.flow_id} {ctx.current_node.name} {ctx.visit} "
        f"{ctx.attempt} {time.time():.6f}\n"
    )
    fd = os.open(os.environ["QM_TEST_SIDE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def work(ctx: ExecutionContext) -> str:
    """Sleeps ``metadata.sleep`` seconds (blocking), returns its name and input."""
    note(ctx)
    time.sleep(float(ctx.current_node.metadata.get("sleep", 0)))
    return f"{ctx.current_node.name}({ctx.input_text})"


async def awork(ctx: ExecutionContext) -> str:
    """`work` as an async executor."""
    note(ctx)
    await asyncio.sleep(float(ctx.current_node.metadata.get("sleep", 0)))
    return f"{ctx.current_node.name}({ctx.input_text})"


def join(ctx: ExecutionContext) -> str:
    note(ctx)
    return "+".join(sorted(ctx.input_text.split("\n")))


def hang(ctx: ExecutionContext) -> str:
    """Notes ``started``, then waits ``metadata.seconds`` (default 60) unless the flow
    is stopped; notes ``cancelled`` if it saw the stop, else ``ran``."""
    note(ctx, "started")
    deadline = time.monotonic() + float(ctx.current_node.metadata.get("seconds", 60))
    while time.monotonic() < deadline and not ctx.cancelled:
        time.sleep(0.02)
    note(ctx, "cancelled" if ctx.cancelled else "ran")
    return "hung"


async def ahang(ctx: ExecutionContext) -> str:
    """`hang` as an async executor (a stop cancels it)."""
    note(ctx, "started")
    try:
        await asyncio.sleep(float(ctx.current_node.metadata.get("seconds", 60)))
    except asyncio.CancelledError:
        note(ctx, "cancelled")
        raise
    note(ctx)
    return "hung"


def ask(ctx: ExecutionContext) -> NodeResult:
    note(ctx)
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="Name?")
    return NodeResult(output_text=f"hello {ctx.user_input}")


def flaky(ctx: ExecutionContext) -> str:
    note(ctx)
    if ctx.attempt < 3:
        raise ConnectionError("try again")
    return "third time"


def route(ctx: ExecutionContext) -> NodeResult:
    note(ctx)
    return NodeResult(output_text=ctx.input_text, picked_node="left")


def again(ctx: ExecutionContext) -> NodeResult:
    """Loops back once: picks ``again`` on the first visit, ``done`` after."""
    note(ctx)
    pick = "again" if ctx.visit < 2 else "done"
    return NodeResult(output_text=ctx.input_text[-60:], picked_node=pick)


def stream(ctx: ExecutionContext) -> str:
    """Streams the tokens ``a``, ``b``, ``c`` (with ``metadata.wait_go``, only once the
    file ``go-<flow id>`` exists). After ``a`` it waits (up to 30 s) for
    the file ``ack-<flow id>`` next to ``$QM_TEST_SIDE``, which a test writes once a
    client received ``a``: the output says whether it came while the node ran."""
    note(ctx)
    side = Path(os.environ["QM_TEST_SIDE"])
    ack = side.with_name(f"ack-{ctx.flow_id}")
    if ctx.current_node.metadata.get("wait_go"):
        # A client must be listening first: it writes go-<flow id> (up to 30 s).
        _wait_for(side.with_name(f"go-{ctx.flow_id}"), 30)
    ctx.emit_token("a ")
    _wait_for(ack, 30)
    ctx.emit_token("b ")
    ctx.emit_token("c ")
    return "acked" if ack.exists() else "no ack within 30 s"


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def spend(ctx: ExecutionContext) -> NodeResult:
    """Reports 100 + 20 LLM tokens of the model ``m1`` (as the LLM pack's nodes do),
    after sleeping ``metadata.sleep`` seconds; with ``metadata.fail_once``, its first
    attempt fails (reporting the same usage)."""
    note(ctx)
    time.sleep(float(ctx.current_node.metadata.get("sleep", 0)))
    data: dict[str, Any] = {"usage": {"input_tokens": 100, "output_tokens": 20}, "model": "m1"}
    if ctx.current_node.metadata.get("fail_once") and ctx.attempt == 1:
        return NodeResult(success=False, error="rate limited", data=data)
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})", data=data)


def fail(ctx: ExecutionContext) -> str:
    note(ctx)
    raise ValueError(f"{ctx.current_node.name} always fails")


class Executor:
    def __init__(self, fn: Callable[[ExecutionContext], Any]) -> None:
        self.execute = fn


EXECUTORS: dict[str, Callable[[ExecutionContext], Any]] = {
    "work": work,
    "awork": awork,
    "join": join,
    "hang": hang,
    "ahang": ahang,
    "ask": ask,
    "flaky": flaky,
    "route": route,
    "again": again,
    "fail": fail,
    "stream": stream,
    "spend": spend,
}


@hookimpl
def qm_register_node_executors(register: Register) -> None:
    only = os.environ.get("QM_TEST_ONLY_TYPES")
    for name, fn in EXECUTORS.items():
        if only is None or name in only.split(","):
            register(name, lambda settings, fn=fn: Executor(fn))

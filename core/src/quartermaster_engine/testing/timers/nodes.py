"""The executors of the timer kit's graphs: ``work`` (notes each run in a side file,
one line per run), ``ask`` (waits for an answer) and ``late`` (the edge a passed
deadline takes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry


def side_work(side: str) -> Callable[[Any], NodeResult]:
    """``work``: notes ``FLOW_ID NODE`` in the file ``side`` and answers ``name(input)``."""

    def work(ctx: Any) -> NodeResult:
        with open(side, "a") as fh:  # O_APPEND: one short write per line
            fh.write(f"{ctx.flow_id} {ctx.current_node.name}\n")
        return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")

    return work


def ask_node(ctx: Any) -> NodeResult:
    """``ask``: waits for an answer, then answers ``answer: ANSWER``."""
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="ok?")
    return NodeResult(output_text=f"answer: {ctx.user_input}")


def late_node(ctx: Any) -> NodeResult:
    """``late``: what a passed deadline's edge runs."""
    return NodeResult(output_text=f"late: {ctx.input_text}")


def timer_registry(side: str) -> SimpleNodeRegistry:
    """``work`` (noting runs in ``side``), ``ask`` and ``late``."""
    return SimpleNodeRegistry({"work": side_work(side), "ask": ask_node, "late": late_node})

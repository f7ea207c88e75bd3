"""The graph and executors the history tests share: a decision, a join and a
loop, then a pause."""

from __future__ import annotations

from typing import Any

from quartermaster_engine import ExecutionContext, NodeResult, SimpleNodeRegistry
from quartermaster_engine.testing.graphs import build_graph


def _inc(ctx: ExecutionContext) -> NodeResult:
    n = ctx.memory.get("n", 0) + 1
    return NodeResult(output_text=str(n), data={"memory_updates": {"n": n}})


def _check(ctx: ExecutionContext) -> NodeResult:
    again = ctx.memory["n"] < 2
    return NodeResult(output_text=ctx.input_text, picked_node="again" if again else "done")


def _step(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def _ask(ctx: ExecutionContext) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="Name?")
    return NodeResult(
        output_text=f"hello {ctx.user_input}", data={"memory_updates": {"who": ctx.user_input}}
    )


def registry() -> SimpleNodeRegistry:
    reg = SimpleNodeRegistry()
    for node_type, fn in (("inc", _inc), ("check", _check), ("step", _step), ("ask", _ask)):
        reg.register(node_type, fn)
    return reg


#: The nodes of GRAPH, and its edges up to the loop back (`LOOP`).
NODES: dict[str, Any] = {
    "Start": "Start1",
    "Inc": "inc",
    "A": "step",
    "B": "step",
    "J": {"type": "step", "traverse_in": "AwaitAll"},
    "Check": {"type": "check", "traverse_out": "SpawnPickedNode"},
    "Ask": "ask",
    "End": "End1",
}
LOOP = [
    ("Start", "Inc"),
    ("Inc", "A"),
    ("Inc", "B"),
    ("A", "J"),
    ("B", "J"),
    ("J", "Check"),
    ("Check", "Inc", "again"),
]

#: A decision, a join and a loop, then a pause: Start -> Inc -> (A, B) -> J ->
#: Check -again-> Inc; Check -done-> Ask -> End.
GRAPH = build_graph(NODES, [*LOOP, ("Check", "Ask", "done"), ("Ask", "End")])

#: A new version of GRAPH (`Engine.migrate`): a node "Polish" between Ask and End.
GRAPH_V2 = build_graph(
    {**NODES, "Polish": "step"},
    [*LOOP, ("Check", "Ask", "done"), ("Ask", "Polish"), ("Polish", "End")],
    name="v2",
)

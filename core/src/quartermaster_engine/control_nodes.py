"""The engine's own control-flow node executors: Start1, End1, Back1, Sleep1, Merge1, Map1.

Start1 and End1 pass on the text delivered to them: the start node gets the
flow input (or, when a SpawnStart node loops back, that node's output), and
the end node's output, the flow's ``final_output``, is what reached it.

Merge1 is a control node as in 0.1.5: a Merge1 without LLM settings (see
`merge_asks_for_llm`) joins the texts of its delivered inputs, one per line, in
the order of its incoming edges, whatever the registry holds and whether or
not an LLM pack is installed. A Merge1 that asks for an LLM is handed to the
``Merge1`` executor of the registry or of the installed plugins (the LLM pack's).

They are ``async def`` so that no dispatcher sends them to a thread.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

from quartermaster_engine.clock import SYSTEM_CLOCK, Clock
from quartermaster_engine.context.execution_context import ExecutionContext
from quartermaster_engine.durations import parse_duration
from quartermaster_engine.events import TimerFired
from quartermaster_engine.nodes import NodeExecutor, NodeResult, ValidatesNodes
from quartermaster_graph import GraphNode, GraphSpec
from quartermaster_graph.enums import MAP_ITEM_ERRORS, NodeType

MERGE_TYPE = NodeType.MERGE.value
MAP_TYPE = NodeType.MAP.value
#: The ``user_input`` of a Map1 node's second run, once every item ended: the join.
MAP_JOIN = "qm:map-join"
SLEEP_TYPE = NodeType.SLEEP.value

#: Metadata keys of a Merge1 node that ask for an LLM when they hold a non-empty value.
LLM_MERGE_KEYS = ("llm_model", "llm_provider", "llm_system_instruction", "system_instruction")


class StartExecutor:
    """Start1: outputs the flow input."""

    async def execute(self, context: ExecutionContext) -> NodeResult:
        return NodeResult(success=True, output_text=context.input_text)

    def memory_reads(self, node: GraphNode) -> tuple[str, ...]:
        """None: it outputs its input (`ReadsMemory`)."""
        return ()


class EndExecutor:
    """End1: outputs what it received; that is the flow's final output."""

    async def execute(self, context: ExecutionContext) -> NodeResult:
        return NodeResult(success=True, output_text=context.input_text)

    def memory_reads(self, node: GraphNode) -> tuple[str, ...]:
        """None: it outputs its input (`ReadsMemory`)."""
        return ()


class BackExecutor:
    """Back1: outputs what it received. The scheduler then loops back to the start
    node (top-level flow) or ends the flow, returning that output to the parent
    (a sub-graph's flow)."""

    async def execute(self, context: ExecutionContext) -> NodeResult:
        return NodeResult(success=True, output_text=context.input_text)

    def memory_reads(self, node: GraphNode) -> tuple[str, ...]:
        """None: it outputs its input (`ReadsMemory`)."""
        return ()


def merge_asks_for_llm(node: GraphNode) -> str | None:
    """The metadata key by which a Merge1 node asks for an LLM (the first of
    `LLM_MERGE_KEYS` holding a non-empty value), or None for a plain join."""
    meta = node.metadata
    for key in LLM_MERGE_KEYS:
        if meta.get(key) not in (None, ""):
            return key
    return None


class MergeExecutor:
    """Merge1: joins the delivered inputs' texts, one per line, in the order of the
    incoming edges; a node that asks for an LLM goes to ``llm`` (the ``Merge1``
    executor the registry or the installed plugins provide, None if there is none).
    """

    def __init__(self, llm: NodeExecutor | None) -> None:
        self.llm = llm

    def validate_node(self, node: GraphNode, graph: GraphSpec) -> list[str]:
        """Problems found before the flow starts: only a node that asks for an LLM has
        any, and then they are the LLM executor's (or that there is none)."""
        key = merge_asks_for_llm(node)
        if key is None:
            return []
        if self.llm is None:
            return [
                f"Merge1 asks for an LLM (metadata {key!r} is set) but no executor for "
                "LLM merges is installed: install qm-nodes-llm or register a Merge1 "
                f"executor; without {', '.join(LLM_MERGE_KEYS)} a Merge1 joins its inputs"
            ]
        if isinstance(self.llm, ValidatesNodes):
            return list(self.llm.validate_node(node, graph) or ())
        return []

    async def execute(self, context: ExecutionContext) -> NodeResult:
        if self.llm is not None and merge_asks_for_llm(context.current_node) is not None:
            result: Any = self.llm.execute(context)
            if inspect.isawaitable(result):
                result = await result
            return result  # type: ignore[no-any-return]
        # The scheduler joins the delivered texts in incoming-edge order, one per line.
        return NodeResult(success=True, output_text=context.input_text)


class MapExecutor:
    """Map1: its first run hands the list to map to the runner (``data["map_items"]``),
    computed by ``items``, the ``Map1`` executor of the registry or of the installed
    plugins (the std pack's evaluates the ``items`` expression); the runner runs the
    items and joins them (`runner.maps`), then runs the node again (``MAP_JOIN``)."""

    def __init__(self, items: NodeExecutor | None) -> None:
        self.items = items

    def validate_node(self, node: GraphNode, graph: GraphSpec) -> list[str]:
        meta = node.metadata
        problems = []
        if self.items is None:
            problems.append(
                "Map1 needs an executor that evaluates its 'items': install qm-nodes-std "
                "or register a Map1 executor"
            )
        elif isinstance(self.items, ValidatesNodes):
            problems.extend(self.items.validate_node(node, graph) or ())
        limit = meta.get("max_concurrency", 8)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            problems.append(f"Map1 'max_concurrency' {limit!r} is not a whole number >= 1")
        if meta.get("on_item_error", "fail") not in MAP_ITEM_ERRORS:
            problems.append(
                f"Map1 'on_item_error' {meta.get('on_item_error')!r} is not one of "
                + ", ".join(repr(m) for m in MAP_ITEM_ERRORS)
            )
        return problems

    async def execute(self, context: ExecutionContext) -> NodeResult:
        if context.user_input == MAP_JOIN:
            return NodeResult(success=True)  # the runner joins the items' results
        if self.items is None:
            return NodeResult(success=False, error="no executor evaluates Map1 'items'")
        result: Any = self.items.execute(context)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, NodeResult):
            return NodeResult(
                success=False,
                error=f"the Map1 items executor returned {type(result).__name__}; expected "
                "NodeResult(data={'map_items': [...]})",
            )
        if not result.success:
            return result
        items = result.data.get("map_items")
        if isinstance(items, tuple):
            items = list(items)
        if not isinstance(items, list):
            return NodeResult(
                success=False,
                error=f"Map1 'items' gave {type(items).__name__}, not a list",
            )
        return NodeResult(success=True, data={"map_items": items})


def wake_time(node: GraphNode, now: float) -> float:
    """When a Sleep1 node that starts sleeping at ``now`` wakes (a Unix time);
    `ValueError` naming the problem for bad settings."""
    meta = node.metadata
    duration, until = meta.get("duration"), meta.get("until")
    if (duration is None) == (until is None):
        raise ValueError("Sleep1 needs exactly one of 'duration' and 'until'")
    if until is not None:
        try:
            when = datetime.fromisoformat(str(until))
        except ValueError:
            raise ValueError(f"Sleep1 'until' {until!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise ValueError(f"Sleep1 'until' {until!r} has no time zone")
        return when.timestamp()
    if isinstance(duration, bool) or not isinstance(duration, (str, int, float)):
        raise ValueError(f"Sleep1 'duration' {duration!r} is not a duration")
    seconds = parse_duration(duration).total_seconds() if isinstance(duration, str) else duration
    if seconds < 0:
        raise ValueError(f"Sleep1 'duration' {duration!r} is negative")
    return now + float(seconds)


def iso(when: float) -> str:
    """A Unix time as ISO 8601 in UTC."""
    return datetime.fromtimestamp(when, UTC).isoformat()


class SleepExecutor:
    """Sleep1: parks the node until its wake time (`wake_time`, by the engine's
    clock); run again once it is due, it passes on what reached it.

    The parked activation carries its wake time as ``user_input`` (the Unix time as
    text, exact), so the second run knows it woke, also in another process after a
    crash.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def validate_node(self, node: GraphNode, graph: GraphSpec) -> list[str]:
        try:
            wake_time(node, 0.0)
        except ValueError as exc:
            return [str(exc)]
        return []

    async def execute(self, context: ExecutionContext) -> NodeResult:
        woke = context.user_input
        if woke is None:
            wake = wake_time(context.current_node, self.clock.now())
            return NodeResult(success=True, wait_for_user=True, wake_at=wake)
        wake_at = float(woke)
        context.emit(
            TimerFired(
                flow_id=context.flow_id,
                node_id=context.node_id,
                node_name=context.current_node.name,
                wake_at=wake_at,
                late=max(0.0, self.clock.now() - wake_at),
            )
        )
        return NodeResult(success=True, output_text=context.input_text)


def control_executors(clock: Clock = SYSTEM_CLOCK) -> dict[str, NodeExecutor]:
    """Executors the engine provides for Start1, End1, Back1 and Sleep1 (Merge1
    needs the registry's LLM merge, see `MergeExecutor`)."""
    return {
        "Start1": StartExecutor(),
        "End1": EndExecutor(),
        "Back1": BackExecutor(),
        SLEEP_TYPE: SleepExecutor(clock),
    }

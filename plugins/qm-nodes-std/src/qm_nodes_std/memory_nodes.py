"""Memory nodes: WriteMemory1, UpdateMemory1, ReadMemory1, FlowMemory1, UserMemory1.

``memory_type`` ``flow`` (the default) is the flow's memory: updates are applied
when the node commits. ``user`` is the agent's persistent memory
(``context.persistent_memory``, keyed by the graph's ``agent_id``), which outlives
flows and, with a durable store, processes. Persistent values are text: other
values are stored as their JSON text. Whatever a node reads from or writes to user
memory is also put in flow memory, so later nodes see it as ``memory.<key>``.

``memory_name`` names the memory a node belongs to, as in 0.1.5's designer; keys are
not prefixed with it. Every memory node passes its input on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from qm_nodes_std.base import (
    NodeFailure,
    Problems,
    StdExecutor,
    as_text,
    keys_of,
    memory_view,
    parse_initial_data,
    passthrough,
    resolve,
    storable,
    variables,
)
from qm_nodes_std.expressions import BASE_NAMES, Expression
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode

#: Names a memory variable's expression may read: the usual ones and ``current``,
#: the key's value before this node (None when it has none).
MEMORY_NAMES = BASE_NAMES | {"current"}
MEMORY_TYPES = ("flow", "user")


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    memory_name: str
    memory_type: str
    variables: tuple[tuple[str, Expression], ...] = ()
    variable_names: tuple[str, ...] = ()
    initial: tuple[tuple[str, Any], ...] = ()


def _common(node: GraphNode, problems: Problems) -> tuple[str, str]:
    meta = node.metadata
    memory_name = problems.text(meta, "memory_name")
    memory_type = problems.text(meta, "memory_type").lower() or "flow"
    if memory_type not in MEMORY_TYPES:
        problems.add(f"metadata 'memory_type' must be 'flow' or 'user', got {memory_type!r}")
    return memory_name, memory_type


def _variables(node: GraphNode, problems: Problems) -> tuple[tuple[str, Expression], ...]:
    raw = problems.items_of(node.metadata, "variables")
    if not raw and not problems.items:
        problems.add("metadata 'variables' is empty: list [{name, expression}] entries")
    found: list[tuple[str, Expression]] = []
    for index, entry in enumerate(raw):
        where = f"metadata 'variables'[{index}]"
        if not isinstance(entry, dict):
            problems.add(f"{where} must be a mapping with 'name' and 'expression'")
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            problems.add(f"{where} has no 'name'")
        expression = problems.expression(
            entry.get("expression"), f"{where} 'expression'", MEMORY_NAMES
        )
        if isinstance(name, str) and name and expression is not None:
            found.append((name, expression))
    return tuple(found)


class _UserMemory:
    """The agent's persistent memory, whose methods may be plain or ``async``."""

    def __init__(self, context: ExecutionContext) -> None:
        self.memory = context.persistent_memory
        self.agent: UUID = context.agent_id

    async def read(self, key: str) -> str | None:
        value = await resolve(self.memory.read(self.agent, key))
        return None if value is None else str(value)

    async def write(self, key: str, value: str) -> None:
        await resolve(self.memory.write(self.agent, key, value))

    async def keys(self) -> list[str]:
        return list(await resolve(self.memory.list_keys(self.agent)))

    async def missing(self, key: str) -> NodeFailure:
        return NodeFailure(
            f"user memory of agent {self.agent} has no key {key!r}; "
            + keys_of(dict.fromkeys(await self.keys()))
        )


class _Writer(StdExecutor[MemoryPlan]):
    """Evaluates ``variables`` in order and writes them; UpdateMemory1 needs the keys to exist."""

    must_exist = False

    def plan(self, node: GraphNode) -> MemoryPlan:
        problems = Problems()
        memory_name, memory_type = _common(node, problems)
        found = _variables(node, problems)
        problems.raise_any()
        return MemoryPlan(memory_name, memory_type, variables=found)

    async def run(self, context: ExecutionContext, plan: MemoryPlan) -> NodeResult:
        user = _UserMemory(context) if plan.memory_type == "user" else None
        flow = memory_view(context) if user is None else {}
        updates: dict[str, Any] = {}
        for name, expression in plan.variables:
            if user is not None:
                current = updates[name] if name in updates else await user.read(name)
                if current is None and self.must_exist:
                    raise await user.missing(name)
            else:
                exists = name in updates or name in flow
                if not exists and self.must_exist:
                    raise NodeFailure(
                        f"cannot update {name!r}: flow memory has no such key ({keys_of(flow)}); "
                        "WriteMemory1 creates keys"
                    )
                current = updates[name] if name in updates else flow.get(name)
            values = variables(context, expression.names, current=current)
            if "memory" in values and updates:
                values["memory"] = {**values["memory"], **updates}
            value = storable(expression.evaluate(values), f"variable {name!r}")
            if user is not None:
                value = as_text(value)
                await user.write(name, value)
            updates[name] = value
        return passthrough(context, memory_updates=updates)


class WriteMemoryExecutor(_Writer):
    """WriteMemory1: evaluates each of metadata ``variables`` (``[{"name", "expression"}]``)
    in order and stores it under its name; later ones see the values of earlier ones.

    ``write_memory("Keep", variables=[{"name": "ticket", "expression": "input"}])``.
    """

    node_type = "WriteMemory1"


class UpdateMemoryExecutor(_Writer):
    """UpdateMemory1: like WriteMemory1, for keys that must already exist; a missing key
    fails the node. ``{"name": "attempts", "expression": "current + 1"}``."""

    node_type = "UpdateMemory1"
    must_exist = True


class ReadMemoryExecutor(StdExecutor[MemoryPlan]):
    """ReadMemory1: outputs the values of metadata ``variable_names`` (all keys when
    empty): one value as its text, several as a JSON object. A missing key fails the
    node. Reading user memory also puts the values in flow memory.
    """

    node_type = "ReadMemory1"

    def plan(self, node: GraphNode) -> MemoryPlan:
        problems = Problems()
        memory_name, memory_type = _common(node, problems)
        names = problems.items_of(node.metadata, "variable_names")
        for index, name in enumerate(names):
            if not isinstance(name, str) or not name:
                problems.add(f"metadata 'variable_names'[{index}] must be a non-empty string")
        problems.raise_any()
        return MemoryPlan(memory_name, memory_type, variable_names=tuple(names))

    async def run(self, context: ExecutionContext, plan: MemoryPlan) -> NodeResult:
        values: dict[str, Any] = {}
        data: dict[str, Any] = {}
        if plan.memory_type == "user":
            user = _UserMemory(context)
            for name in plan.variable_names or tuple(await user.keys()):
                value = await user.read(name)
                if value is None:
                    raise await user.missing(name)
                values[name] = value
            data["memory_updates"] = dict(values)
        else:
            flow = memory_view(context)
            for name in plan.variable_names or tuple(flow):
                if name not in flow:
                    raise NodeFailure(f"flow memory has no key {name!r}; {keys_of(flow)}")
                values[name] = flow[name]
        if len(plan.variable_names) == 1:
            output = as_text(values[plan.variable_names[0]])
        else:
            output = json.dumps(values, ensure_ascii=False)
        return NodeResult(output_text=output, data={**data, "values": values})


def _initial_plan(node: GraphNode) -> MemoryPlan:
    problems = Problems()
    memory_name = problems.text(node.metadata, "memory_name")
    initial = parse_initial_data(
        node.metadata.get("initial_data"), "metadata 'initial_data'", problems
    )
    problems.raise_any()
    return MemoryPlan(memory_name, "flow", initial=tuple(initial.items()))


class FlowMemoryExecutor(StdExecutor[MemoryPlan]):
    """FlowMemory1: declares flow memory and its metadata ``initial_data``
    (``[{"key", "value"}]`` or a mapping).

    When it runs it stores each initial value whose key flow memory does not hold
    yet. A FlowMemory1 that no edge reaches still declares: the pack's nodes read
    its initial values for keys flow memory does not hold.
    """

    node_type = "FlowMemory1"

    def plan(self, node: GraphNode) -> MemoryPlan:
        return _initial_plan(node)

    async def run(self, context: ExecutionContext, plan: MemoryPlan) -> NodeResult:
        memory = context.memory
        updates = {k: storable(v, f"initial {k!r}") for k, v in plan.initial if k not in memory}
        return passthrough(context, memory_updates=updates)


class UserMemoryExecutor(StdExecutor[MemoryPlan]):
    """UserMemory1: declares the agent's persistent memory and its metadata
    ``initial_data``; when it runs, each declared key the agent has no value for is
    created with its initial value, and the declared keys (every key of the agent
    when none is declared) are loaded into flow memory.
    """

    node_type = "UserMemory1"

    def plan(self, node: GraphNode) -> MemoryPlan:
        return _initial_plan(node)

    async def run(self, context: ExecutionContext, plan: MemoryPlan) -> NodeResult:
        user = _UserMemory(context)
        loaded: dict[str, str] = {}
        for key, initial in plan.initial:
            value = await user.read(key)
            if value is None:
                value = as_text(storable(initial, f"initial {key!r}"))
                await user.write(key, value)
            loaded[key] = value
        if not plan.initial:
            for key in await user.keys():
                value = await user.read(key)
                if value is not None:
                    loaded[key] = value
        return passthrough(context, memory_updates=loaded)

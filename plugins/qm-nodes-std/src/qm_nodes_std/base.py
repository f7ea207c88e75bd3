"""What every executor of the pack shares: settings checked once per node, the names
expressions and templates see, and small conversions."""

from __future__ import annotations

import inspect
import json
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from qm_nodes_std.expressions import (
    BASE_NAMES,
    Expression,
    ExpressionError,
    ExpressionFailed,
    compile_expression,
)
from qm_nodes_std.templates import Template, TemplateError, TemplateFailed, compile_template
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode, GraphSpec, NodeType

T = TypeVar("T")
K = TypeVar("K")


class SettingsError(ValueError):
    """A node's metadata is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class IdentityCache(Generic[K, T]):
    """Values computed once per object (a node, a graph), dropped when the object dies.

    Keyed by identity, so nodes and graphs need not be hashable; a weak reference
    checks that a hit is the same object and not a new one at a reused address.
    """

    def __init__(self) -> None:
        self._items: dict[int, tuple[weakref.ref[Any], T]] = {}

    def get(self, obj: K, build: Callable[[], T]) -> T:
        key = id(obj)
        hit = self._items.get(key)
        if hit is not None and hit[0]() is obj:
            return hit[1]
        value = build()
        items = self._items

        def drop(ref: weakref.ref[Any]) -> None:
            current = items.get(key)
            if current is not None and current[0] is ref:
                del items[key]

        items[key] = (weakref.ref(obj, drop), value)
        return value

    def __len__(self) -> int:
        return len(self._items)


P = TypeVar("P")


class StdExecutor(Generic[P]):
    """Base of the pack's executors.

    A subclass reads its node's metadata once into a plan (`plan`, raising
    `SettingsError` with every problem), cached per node; ``validate_node``
    reports the same problems before a flow starts, and `run` gets the plan.
    """

    node_type: ClassVar[str]

    def __init__(self) -> None:
        self._plans: IdentityCache[GraphNode, P] = IdentityCache()

    def plan(self, node: GraphNode) -> P:
        """Read and check the node's metadata; raise `SettingsError`."""
        raise NotImplementedError

    def check(self, node: GraphNode, graph: GraphSpec, plan: P) -> list[str]:
        """Problems that need the graph (edges, other nodes); none by default."""
        return []

    def plan_for(self, node: GraphNode) -> P:
        """The node's plan, read the first time it is needed and then reused."""
        return self._plans.get(node, lambda: self.plan(node))

    def validate_node(self, node: GraphNode, graph: GraphSpec) -> list[str]:
        """Every problem of the node's settings, for the runner's pre-flight check."""
        try:
            plan = self.plan_for(node)
        except SettingsError as exc:
            return exc.problems
        return self.check(node, graph, plan)

    async def execute(self, context: ExecutionContext) -> NodeResult:
        """Run the node; its settings, expression and template errors fail it with
        their message (the engine adds the node's name)."""
        try:
            plan = self.plan_for(context.current_node)
            return await self.run(context, plan)
        except SettingsError as exc:
            return NodeResult(success=False, error="; ".join(exc.problems))
        except (ExpressionFailed, TemplateFailed, NodeFailure) as exc:
            return NodeResult(success=False, error=str(exc))

    async def run(self, context: ExecutionContext, plan: P) -> NodeResult:
        """What the node does, given its plan; raise `NodeFailure` to fail it."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NodeFailure(RuntimeError):
    """A node fails with this message (the engine adds the node's name)."""


# -- reading metadata ---------------------------------------------------------------


class Problems:
    """Collects a node's settings problems, to raise them all at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_any(self) -> None:
        if self.items:
            raise SettingsError(self.items)

    def text(self, meta: Mapping[str, Any], key: str, *, required: bool = False) -> str:
        value = meta.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.add(f"metadata {key!r} must be a string, got {type(value).__name__}")
            return ""
        if required and not value.strip():
            self.add(f"metadata {key!r} is required")
        return value

    def expression(
        self, source: Any, where: str, names: frozenset[str] = BASE_NAMES
    ) -> Expression | None:
        if source is None or (isinstance(source, str) and not source.strip()):
            self.add(f"{where} is required")
            return None
        if isinstance(source, bool | int | float):
            source = str(source)  # YAML reads `expression: 0` as a number
        try:
            return compile_expression(source, names)
        except ExpressionError as exc:
            self.add(f"{where}: {exc}")
            return None

    def template(
        self, source: Any, where: str, names: frozenset[str] = BASE_NAMES
    ) -> Template | None:
        try:
            return compile_template("" if source is None else source, names)
        except TemplateError as exc:
            self.add(f"{where}: {exc}")
            return None

    def items_of(self, meta: Mapping[str, Any], key: str) -> list[Any]:
        value = meta.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(f"metadata {key!r} must be a list, got {type(value).__name__}")
            return []
        return value


# -- what expressions and templates see ------------------------------------------------

_defaults: IdentityCache[GraphSpec, dict[str, Any]] = IdentityCache()


def parse_initial_data(value: Any, where: str, problems: Problems) -> dict[str, Any]:
    """``initial_data`` of a memory node: ``[{"key" or "name": k, "value": v}]`` or ``{k: v}``."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if not isinstance(value, list):
        problems.add(f"{where} must be a list of {{key, value}} entries or a mapping")
        return {}
    data: dict[str, Any] = {}
    for index, entry in enumerate(value):
        key = entry.get("key", entry.get("name")) if isinstance(entry, Mapping) else None
        if not isinstance(key, str) or not key:
            problems.add(f"{where}[{index}] needs a 'key' (or 'name') and a 'value'")
            continue
        data[key] = entry.get("value")
    return data


def _declared_defaults(graph: GraphSpec) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for node in graph.nodes:
        if node.type_name == NodeType.FLOW_MEMORY.value:
            defaults.update(parse_initial_data(node.metadata.get("initial_data"), "", Problems()))
    return defaults


def memory_view(context: ExecutionContext) -> dict[str, Any]:
    """Flow memory as the pack's nodes read it: the initial data that the graph's
    FlowMemory1 nodes declare, overridden by what flow memory holds."""
    memory = context.memory
    defaults = _defaults.get(context.graph, lambda: _declared_defaults(context.graph))
    if not defaults:
        return memory
    return {**defaults, **memory}


def variables(context: ExecutionContext, used: Iterable[str], **extra: Any) -> dict[str, Any]:
    """The values of the names an expression or template reads (only those: the memory
    snapshot and predecessor outputs are built on first use)."""
    values: dict[str, Any] = {}
    for name in used:
        if name == "input":
            values[name] = context.input_text
        elif name == "memory":
            values[name] = memory_view(context)
        elif name == "outputs":
            values[name] = context.predecessor_outputs
        elif name == "visit":
            values[name] = context.visit
        elif name in extra:
            values[name] = extra[name]
    return values


# -- conversions -----------------------------------------------------------------------


def as_text(value: Any) -> str:
    """A value as output text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def storable(value: Any, what: str) -> Any:
    """``value`` as JSON data (tuples become lists), or `NodeFailure` naming ``what``."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [storable(v, what) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise NodeFailure(f"{what}: a dict stored in memory needs string keys")
        return {k: storable(v, what) for k, v in value.items()}
    raise NodeFailure(
        f"{what}: a {type(value).__name__} cannot be stored in memory "
        "(use strings, numbers, booleans, None, lists and dicts)"
    )


async def resolve(value: Any) -> Any:
    """Await ``value`` if it is awaitable (persistent memory methods may be async)."""
    return await value if inspect.isawaitable(value) else value


def passthrough(context: ExecutionContext, **data: Any) -> NodeResult:
    """Success, with the node's input as its output."""
    return NodeResult(output_text=context.input_text, data=data)


def keys_of(mapping: Mapping[str, Any]) -> str:
    """For error messages: the keys of a memory, or that it is empty."""
    return f"it has {', '.join(sorted(mapping))}" if mapping else "it is empty"

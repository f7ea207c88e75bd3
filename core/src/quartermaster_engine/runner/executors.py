"""Which executor runs each node type, and the pre-flight check of a graph."""

from __future__ import annotations

import difflib
import weakref
from typing import Any, cast

from quartermaster_engine.clock import SYSTEM_CLOCK, Clock
from quartermaster_engine.control_nodes import (
    MAP_TYPE,
    MERGE_TYPE,
    SLEEP_TYPE,
    MapExecutor,
    MergeExecutor,
    control_executors,
)
from quartermaster_engine.nodes import (
    ListsTypes,
    NodeExecutor,
    NodeRegistry,
    ValidatesNodes,
    is_async_executor,
)
from quartermaster_engine.runner.compiled import CNode, CompiledGraph
from quartermaster_engine.types import NodeType


class UnknownNodeTypeError(ValueError):
    """The graph uses a node type no installed executor handles."""


class NodeConfigError(ValueError):
    """A node's settings are invalid (found before the flow starts)."""


class Executors:
    """A runner's executors: with a ``node_registry``, its executors then the
    engine's own Start1/End1 (as in 0.1.5, nothing else runs); without one, every
    installed node executor plugin, loaded on first need. Merge1 is always the
    engine's (`MergeExecutor`), which hands Merge1 nodes that ask for an LLM to
    the executor found for Merge1 here."""

    def __init__(self, node_registry: NodeRegistry | None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.node_registry = node_registry
        #: The installed node executors (loaded on first need, or set by `from_config`).
        self.installed: NodeRegistry | None = None
        self._async_of: dict[int, tuple[NodeExecutor, bool]] = {}
        self._control = control_executors(clock)
        self._merge: MergeExecutor | None = None
        self._map: MapExecutor | None = None
        # Graphs that passed (by identity; a dropped graph leaves with its entry).
        self._preflighted: weakref.WeakSet[CompiledGraph] = weakref.WeakSet()

    def is_async(self, executor: NodeExecutor) -> bool:
        """Whether ``executor.execute`` is a coroutine function, asked once per executor
        (not once per flow: small flows would pay it every time)."""
        key = id(executor)
        hit = self._async_of.get(key)
        if hit is None or hit[0] is not executor:
            hit = self._async_of[key] = (executor, is_async_executor(executor))
        return hit[1]

    def installed_registry(self) -> NodeRegistry:
        if self.installed is None:
            from quartermaster_engine.plugins.loader import load_plugins

            self.installed = load_plugins().node_registry()
        return self.installed

    def executor_for(self, node_type: str) -> tuple[NodeExecutor, bool] | None:
        """The executor of ``node_type`` and whether it is async, or None."""
        executor = self.resolve(node_type)
        return None if executor is None else (executor, self.is_async(executor))

    def resolve(self, node_type: str) -> NodeExecutor | None:
        if node_type == MERGE_TYPE:
            # One per runner: executors are cached by identity (`is_async`).
            if self._merge is None:
                self._merge = MergeExecutor(self._lookup(node_type))
            return self._merge
        if node_type == MAP_TYPE:
            if self._map is None:
                # Its items' evaluator: the registry's, else an installed plugin's.
                items = self._lookup(node_type)
                if items is None and self.node_registry is not None:
                    items = self.installed_registry().get_executor(node_type)
                self._map = MapExecutor(items)
            return self._map
        if node_type == SLEEP_TYPE:
            # Always the engine's: it reads the engine's clock.
            return self._control[SLEEP_TYPE]
        return self._lookup(node_type)

    def _lookup(self, node_type: str) -> NodeExecutor | None:
        if self.node_registry is not None:
            executor = self.node_registry.get_executor(node_type)
            return executor if executor is not None else self._control.get(node_type)
        return self.installed_registry().get_executor(node_type)

    def known_types(self) -> list[str]:
        """The node types this runner can run (for "did you mean" hints)."""
        if self.node_registry is None:
            registry: Any = self.installed_registry()
            extra: list[str] = [SLEEP_TYPE]
        else:
            registry, extra = self.node_registry, list(self._control)
        types = list(registry.list_types()) if isinstance(registry, ListsTypes) else []
        extra.extend((MERGE_TYPE, MAP_TYPE))
        return types + [t for t in extra if t not in types]

    def missing_message(self, cnode: CNode) -> str:
        """The error of a node whose type has no executor, with a "did you mean"."""
        close = difflib.get_close_matches(cnode.type_name, self.known_types(), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "`qm plugins` lists the installed ones"
        return f"no executor for node type {cnode.type_name!r} (node {cnode.describe()}); {hint}"

    def preflight(self, compiled: CompiledGraph, *, allow_missing: bool = False) -> None:
        """Check, before anything runs, what can be known before: every node type that is
        not one of 0.1.5's has an executor, and every executor that can check its node's
        settings (``validate_node(node, graph) -> list[str]``) finds no problem.

        Runs once per graph. Raises `UnknownNodeTypeError` or `NodeConfigError`
        listing every problem at once. ``allow_missing``: node types without an
        executor here are fine (a remote dispatcher's workers run them).
        """
        if compiled in self._preflighted:
            return
        spec = compiled.spec
        graph_name = spec.name or str(spec.id)
        known = {t.value for t in NodeType}
        unknown: list[str] = []
        # Problem -> the nodes that have it: one line per problem, not per node.
        problems: dict[str, list[str]] = {}
        # Node type -> its executor, and whether it checks settings (a protocol check
        # costs microseconds: once per type, not per node of a 100,000-node graph).
        checked: dict[str, tuple[NodeExecutor | None, bool]] = {}
        for cnode in compiled.nodes:
            found = checked.get(cnode.type_name)
            if found is None:
                executor = self.resolve(cnode.type_name)
                found = checked[cnode.type_name] = (executor, isinstance(executor, ValidatesNodes))
            executor, validates = found
            if executor is None:
                if cnode.type_name not in known and not allow_missing:
                    unknown.append(self.missing_message(cnode))
                continue
            if validates:
                validator = cast("ValidatesNodes", executor)
                for problem in validator.validate_node(cnode.node, spec) or ():
                    problems.setdefault(problem, []).append(cnode.describe())
        if unknown:
            lines = "\n".join(f"  {line}" for line in unknown)
            raise UnknownNodeTypeError(
                f"graph {graph_name} uses node types with no executor:\n{lines}"
            )
        if problems:
            lines = "\n".join(
                f"  {'node' if len(nodes) == 1 else 'nodes'} {', '.join(nodes)}: {problem}"
                for problem, nodes in problems.items()
            )
            raise NodeConfigError(f"graph {graph_name} has invalid node settings:\n{lines}")
        self._preflighted.add(compiled)

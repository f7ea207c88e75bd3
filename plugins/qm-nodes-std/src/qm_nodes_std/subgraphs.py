"""SubAssistant1: run another graph as a child flow.

A node names its sub-graph in metadata ``graph`` (0.1.5's ``sub_assistant_id`` is
read when ``graph`` is empty). The name is looked up, in order:

1. in the ``graphs`` setting (``[nodes."SubAssistant1"] graphs = {triage = "graphs/triage.yaml"}``);
2. among the graphs registered in this process with `register_graph`;
3. as a file path: absolute, or relative to each folder of the ``search_path``
   setting in turn, then to the folder of the parent graph's file (when it was
   loaded from one), then to the current working directory.

Relative paths in settings are relative to the config file's folder. Files are
loaded once and reloaded when they change on disk.

With the ``root`` setting (``qm serve`` sets it to its graphs folder), step 3 looks
only inside that folder: ``NAME`` is ``root/NAME`` or ``root/NAME.yaml`` (``.yml``,
``.json``), an absolute path or one that leads outside is refused, and "not found"
says nothing about files elsewhere, so a posted graph cannot read the server's files.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from qm_nodes_std.base import NodeFailure, Problems, SettingsError, StdExecutor
from quartermaster_engine import ExecutionContext, FlowResult, NodeResult
from quartermaster_graph import (
    GraphBuilder,
    GraphNode,
    GraphSpec,
    GraphValidationError,
    NodeType,
    check_graph,
    load_graph,
)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Relative to the config file's folder (``config_dir`` in the validation
    context), else to the working directory."""
    if value.is_absolute():
        return value
    base = (info.context or {}).get("config_dir")
    return (Path(base) if base is not None else Path.cwd()) / value


class SubAssistantSettings(BaseModel):
    """Settings of SubAssistant1 (``[nodes."SubAssistant1"]``)."""

    model_config = ConfigDict(extra="forbid")

    #: Folders relative sub-graph paths are looked up in, before the working directory.
    search_path: list[Path] = Field(default_factory=list)
    #: Sub-graph names and the files they stand for.
    graphs: dict[str, Path] = Field(default_factory=dict)
    #: When set, sub-graph file references resolve only inside this folder.
    root: Path | None = None

    @field_validator("search_path")
    @classmethod
    def _search_path(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [_resolve_path(p, info) for p in value]

    @field_validator("root")
    @classmethod
    def _root(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve_path(value, info).resolve()

    @field_validator("graphs")
    @classmethod
    def _graphs(cls, value: dict[str, Path], info: ValidationInfo) -> dict[str, Path]:
        return {name: _resolve_path(p, info) for name, p in value.items()}


_EXTENSIONS = (".yaml", ".yml", ".json")


# -- the process-wide registry of named graphs ------------------------------------------

_registry: dict[str, GraphSpec | Path] = {}
_registry_lock = threading.Lock()


def register_graph(name: str, graph: GraphSpec | GraphBuilder | str | os.PathLike[str]) -> None:
    """Make ``graph`` (a spec, a builder, or a file path) available to SubAssistant1
    nodes as ``name``. Registering a name again replaces it."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a sub-graph needs a non-empty name, got {name!r}")
    value: GraphSpec | Path
    if isinstance(graph, GraphBuilder):
        value = graph.build()
    elif isinstance(graph, GraphSpec):
        value = graph
    else:
        value = Path(graph).absolute()
    with _registry_lock:
        _registry[name] = value


def unregister_graph(name: str) -> None:
    """Forget a registered graph (no error when absent)."""
    with _registry_lock:
        _registry.pop(name, None)


def registered_graphs() -> list[str]:
    """The names of the registered graphs."""
    return sorted(_registry)


# -- loading ------------------------------------------------------------------------------


class _FileCache:
    """Graph files by path, reloaded when their modification time or size changes, so a
    file's spec stays the same object (the runner compiles each spec once)."""

    def __init__(self) -> None:
        self._items: dict[Path, tuple[tuple[int, int], GraphSpec]] = {}
        self._lock = threading.Lock()

    def load(self, path: Path) -> GraphSpec:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        hit = self._items.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        with self._lock:
            spec = load_graph(path)
            try:
                check_graph(spec)
            except GraphValidationError as exc:
                raise NodeFailure(f"sub-graph file {path} is invalid: {exc}") from None
            self._items[path] = (stamp, spec)
        return spec


@dataclass(frozen=True, slots=True)
class SubGraphRef:
    """What a SubAssistant1 node names, and where it was found."""

    name: str
    spec: GraphSpec | None = None
    path: Path | None = None

    @property
    def key(self) -> str:
        return str(self.path) if self.path is not None else f"registered graph {self.name!r}"


class SubAssistantExecutor(StdExecutor[str]):
    """SubAssistant1: runs the graph named by metadata ``graph`` as a child flow.

    The child gets the node's input and shares the runner's store, executors and
    event listeners (its events carry this flow's id as ``parent_flow_id``); its
    final output is the node's output. A child that pauses pauses this node with the
    child's prompt; the answer goes to the child on resume. A failed or stopped
    child fails the node. A missing or invalid sub-graph (including invalid settings
    of the child's nodes of this pack, and a graph that runs itself) is reported
    before the parent flow starts.
    """

    node_type = "SubAssistant1"

    def __init__(
        self,
        settings: SubAssistantSettings | None = None,
        *,
        validators: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings if settings is not None else SubAssistantSettings()
        self._files = _FileCache()
        self._validators = validators

    # -- settings ---------------------------------------------------------------------

    def plan(self, node: GraphNode) -> str:
        problems = Problems()
        name = problems.text(node.metadata, "graph") or problems.text(
            node.metadata, "sub_assistant_id"
        )
        if not name.strip():
            problems.add("metadata 'graph' is required: a file path or a registered name")
        problems.raise_any()
        return name

    def find(self, name: str, parent: GraphSpec | None = None) -> SubGraphRef:
        """Where ``name`` points; `NodeFailure` lists where it was looked for."""
        configured = self.settings.graphs.get(name)
        if configured is not None:
            return SubGraphRef(name, path=configured)
        registered = _registry.get(name)
        if isinstance(registered, GraphSpec):
            return SubGraphRef(name, spec=registered)
        if registered is not None:
            return SubGraphRef(name, path=registered)
        if self.settings.root is not None:
            return self._find_in_root(name, self.settings.root)
        path = Path(name).expanduser()
        if path.is_absolute():
            candidates = [path]
        else:
            candidates = [folder / path for folder in self.settings.search_path]
            source = parent.source_path if parent is not None else None
            if source is not None:
                candidates.append(source.parent / path)
            candidates.append(Path.cwd() / path)
        for candidate in candidates:
            if candidate.is_file():
                return SubGraphRef(name, path=candidate.resolve())
        looked = ", ".join(str(c) for c in candidates)
        raise NodeFailure(
            f"sub-graph {name!r} not found: it is no configured or registered graph name "
            f"and no file at {looked}"
        )

    def _find_in_root(self, name: str, root: Path) -> SubGraphRef:
        """``name`` as a graph of ``root`` (a file name, with or without its
        extension); nothing outside ``root`` is looked at or named."""
        path = Path(name)
        if not path.is_absolute():
            for candidate in (root / path, *(root / f"{name}{ext}" for ext in _EXTENSIONS)):
                resolved = candidate.resolve()
                if resolved.is_relative_to(root) and resolved.is_file():
                    return SubGraphRef(name, path=resolved)
        raise NodeFailure(
            f"sub-graph {name!r} not found: it is no configured or registered graph name "
            "and no graph of the graphs folder"
        )

    def load(self, ref: SubGraphRef) -> GraphSpec:
        if ref.spec is not None:
            return ref.spec
        assert ref.path is not None
        try:
            return self._files.load(ref.path)
        except FileNotFoundError:
            raise NodeFailure(f"sub-graph file {ref.path} does not exist") from None
        except ValueError as exc:  # GraphFileError: every problem of the file
            raise NodeFailure(f"sub-graph file {ref.path} cannot be loaded: {exc}") from None

    def check(self, node: GraphNode, graph: GraphSpec, plan: str) -> list[str]:
        try:
            self._check_tree(plan, [], graph)
        except NodeFailure as exc:
            return [str(exc)]
        return []

    def _check_tree(self, name: str, chain: list[str], parent: GraphSpec) -> None:
        """Load the sub-graph and, recursively, those its own SubAssistant1 nodes name;
        check the child's nodes with this pack's validators."""
        ref = self.find(name, parent)
        if ref.key in chain:
            cycle = " -> ".join([*chain[chain.index(ref.key) :], ref.key])
            raise NodeFailure(f"sub-graphs run each other in a cycle: {cycle}")
        spec = self.load(ref)
        problems: list[str] = []
        for child in spec.nodes:
            if child.type_name == NodeType.SUB_ASSISTANT.value:
                try:
                    self._check_tree(self.plan_for(child), [*chain, ref.key], spec)
                except (NodeFailure, SettingsError) as exc:
                    problems.append(f"node '{child.name}': {exc}")
                continue
            validator = self._validators_map().get(child.type_name)
            if validator is not None:
                problems.extend(
                    f"node '{child.name}': {p}" for p in validator.validate_node(child, spec)
                )
        if problems:
            raise NodeFailure(f"sub-graph {name!r} has invalid nodes: " + "; ".join(problems))

    def _validators_map(self) -> Mapping[str, Any]:
        if self._validators is None:
            from qm_nodes_std.catalog import std_executors

            self._validators = {
                t: e for t, e in std_executors().items() if t != NodeType.SUB_ASSISTANT.value
            }
        return self._validators

    # -- running ------------------------------------------------------------------------

    async def run(self, context: ExecutionContext, plan: str) -> NodeResult:
        spec = self.load(self.find(plan, context.graph))
        # One child per attempt: a retry starts a fresh child, a resume finds this one.
        key = "" if context.attempt == 1 else f"attempt-{context.attempt}"
        child_id = context.child_flow_id(key)
        if context.user_input is None:
            result = await context.run_child(spec, context.input_text, flow_id=child_id)
        else:
            result = await context.resume_child(child_id, context.user_input)
        return self._outcome(plan, result)

    def _outcome(self, name: str, result: FlowResult) -> NodeResult:
        data = {"child_flow_id": str(result.flow_id)}
        if result.paused:
            waiting = result.waiting[0]
            return NodeResult(
                wait_for_user=True,
                user_prompt=waiting.prompt,
                user_options=list(waiting.options) or None,
                data=data,
            )
        if result.success:
            return NodeResult(output_text=result.final_output, data=data)
        what = "was stopped" if result.status.value == "stopped" else f"failed: {result.error}"
        return NodeResult(
            success=False, error=f"sub-graph {name!r} (flow {result.flow_id}) {what}", data=data
        )

"""Fluent graph builder: ``GraphBuilder("name").start()...end().build()`` -> `GraphSpec`.

Every node method adds one node, connects it from the current last node and
returns the builder, so calls chain. Decisions open branches with ``on(label)``,
parallel fan-outs with ``branch()``; a branch's ``end()`` closes it and returns
to its parent, whose next node (or merge) receives the ends of all closed
branches. Open ends left at ``build()`` go to the graph's single End node.

Cost is constant per added node: nodes are indexed by id and by name as they are
added, so no method scans the graph.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, NoReturn, Self, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from quartermaster_graph.enums import (
    MAP_ITEM_ERRORS,
    MessageType,
    NodeType,
    ThoughtType,
    TraverseIn,
    TraverseOut,
)
from quartermaster_graph.models import (
    Agent,
    GraphEdge,
    GraphNode,
    GraphSpec,
    NodePosition,
    type_name,
)
from quartermaster_graph.validation import check_graph

#: Keyword arguments that set `GraphNode` fields on any node method; every other
#: unknown keyword argument is stored in the node's metadata.
NODE_OPTIONS: tuple[str, ...] = (
    "error_handling",
    "max_retries",
    "retry_delay",
    "timeout",
    "traverse_in",
    "traverse_out",
    "thought_type",
    "message_type",
)

#: The structured-output node type of the LLM pack (quartermaster 0.7's name).
INSTRUCTION_FORM = "InstructionForm1"

#: Vertical distance between the positions the builder gives consecutive nodes.
_ROW_HEIGHT = 120

_PICKS = {"traverse_out": TraverseOut.SPAWN_PICKED}
_USES_PREVIOUS = {"thought_type": ThoughtType.USE_PREVIOUS, "message_type": MessageType.VARIABLE}
_SKIPS = {"thought_type": ThoughtType.SKIP, "message_type": MessageType.VARIABLE}
_AWAITS_ALL = {"traverse_in": TraverseIn.AWAIT_ALL}
_ASSISTANT = {"message_type": MessageType.ASSISTANT}

# GraphNode field defaults per node type (those of quartermaster 0.1.5's builder).
# Hand-written graph files use the same table for fields they leave out.
_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    NodeType.START.value: _SKIPS,
    NodeType.END.value: {"traverse_out": TraverseOut.SPAWN_NONE, **_SKIPS},
    NodeType.BACK.value: {"traverse_out": TraverseOut.SPAWN_START, **_SKIPS},
    NodeType.SLEEP.value: _SKIPS,
    NodeType.MAP.value: _SKIPS,
    NodeType.INSTRUCTION.value: _ASSISTANT,
    NodeType.SUMMARIZE.value: _ASSISTANT,
    NodeType.AGENT.value: _ASSISTANT,
    NodeType.INSTRUCTION_IMAGE_VISION.value: _ASSISTANT,
    NodeType.SUB_ASSISTANT.value: _ASSISTANT,
    NodeType.MERGE.value: {**_AWAITS_ALL, **_ASSISTANT},
    NodeType.STATIC_MERGE.value: _AWAITS_ALL,
    NodeType.DECISION.value: {**_PICKS, **_USES_PREVIOUS},
    NodeType.STATIC_DECISION.value: {**_PICKS, **_USES_PREVIOUS},
    NodeType.IF.value: {**_PICKS, **_USES_PREVIOUS},
    NodeType.SWITCH.value: {**_PICKS, **_USES_PREVIOUS},
    NodeType.USER_DECISION.value: {**_AWAITS_ALL, **_PICKS, **_USES_PREVIOUS},
    NodeType.USER.value: {"message_type": MessageType.USER},
    NodeType.USER_FORM.value: {"message_type": MessageType.USER},
    NodeType.VAR.value: _USES_PREVIOUS,
    NodeType.TEXT_TO_VARIABLE.value: _USES_PREVIOUS,
    NodeType.READ_MEMORY.value: _USES_PREVIOUS,
    NodeType.WRITE_MEMORY.value: _USES_PREVIOUS,
    NodeType.UPDATE_MEMORY.value: _USES_PREVIOUS,
    NodeType.FLOW_MEMORY.value: _SKIPS,
    NodeType.USER_MEMORY.value: _SKIPS,
    NodeType.COMMENT.value: _SKIPS,
    NodeType.CODE.value: _SKIPS,
    NodeType.BREAK.value: {"thought_type": ThoughtType.SKIP, "message_type": MessageType.SYSTEM},
    NodeType.PROGRAM_RUNNER.value: {"message_type": MessageType.TOOL},
}

# LLM keyword arguments that LLM node methods store as ``llm_<name>``.
_LLM_DEFAULTS: dict[str, Any] = {
    "stream": True,
    "max_output_tokens": 2048,
    "max_input_tokens": 16385,
    "vision": False,
    "thinking_level": "off",
}


def node_defaults(node_type: NodeType | str) -> dict[str, Any]:
    """The `GraphNode` field defaults the builder uses for ``node_type``.

    Empty for types without special defaults (``Static1``, custom types, ...).
    """
    return dict(_TYPE_DEFAULTS.get(type_name(node_type), {}))


def _llm_metadata(
    model: str, provider: str, temperature: float, system_instruction: str, **overrides: Any
) -> dict[str, Any]:
    settings = {**_LLM_DEFAULTS, **overrides}
    return {
        "llm_model": model,
        "llm_provider": provider,
        "llm_temperature": temperature,
        "llm_system_instruction": system_instruction,
        **{f"llm_{key}": value for key, value in settings.items()},
    }


def _make_node(
    node_type: NodeType | str,
    name: str,
    metadata: dict[str, Any],
    kwargs: Mapping[str, Any],
    *,
    llm: bool = False,
    fields: Mapping[str, Any] | None = None,
) -> GraphNode:
    """A node of ``node_type``: its type defaults, then node options from ``kwargs``;
    other ``kwargs`` go to metadata (LLM settings as ``llm_<name>`` when ``llm``)."""
    values: dict[str, Any] = {**node_defaults(node_type), **(fields or {})}
    for key, value in kwargs.items():
        if key in NODE_OPTIONS:
            values[key] = value
        elif llm and key in _LLM_DEFAULTS:
            metadata[f"llm_{key}"] = value
        else:
            metadata[key] = value
    try:
        return GraphNode(type=node_type, name=name, metadata=metadata, **values)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ValueError(f"node '{name}' ({type_name(node_type)}): {problems}") from None


def _normalize_cases(cases: Sequence[Mapping[str, Any]] | Mapping[str, str] | None) -> list[Any]:
    """Switch cases as ``[{"label", "expression"}]``; 0.1.5's ``edge_id`` is read as the label."""
    if cases is None:
        return []
    if isinstance(cases, Mapping):
        return [{"label": label, "expression": expr} for label, expr in cases.items()]
    normalized = []
    for index, case in enumerate(cases):
        if not isinstance(case, Mapping):
            raise ValueError(
                f"switch case {index} must be a mapping with 'label' and 'expression', got {case!r}"
            )
        label = case.get("label", case.get("edge_id", ""))
        normalized.append({"label": label, "expression": case.get("expression", "")})
    return normalized


P = TypeVar("P", bound="_Chain")
_ForkKind = Literal["pick", "parallel", "timeout"]


@dataclass(frozen=True, slots=True)
class Take:
    """``on_timeout=Take("late")`` of `GraphBuilder.user`: once the deadline passes
    unanswered, the node takes its outgoing edge labelled ``label`` (begun with
    ``.on("late")``) instead of being answered with a text (docs/time.md)."""

    label: str


class _Chain:
    """Where the next node goes: the node methods shared by a graph and its branches.

    ``_tail`` is the node the next node connects from (``_tail_label`` labels that
    edge: the option of a fresh ``on()`` branch). ``_open_ends`` are ends of closed
    branches, connected to the next node added here. ``_fork`` is the last
    decision (``pick``) or ``parallel()`` fan-out node that ``on()``/``branch()`` start from.
    """

    _root: GraphBuilder

    def __init__(self) -> None:
        self._tail: UUID | None = None
        self._tail_label = ""
        self._open_ends: list[tuple[UUID, str]] = []
        self._fork: UUID | None = None
        self._fork_kind: _ForkKind | None = None

    # -- wiring -------------------------------------------------------------

    def _where(self) -> str:
        """How error messages name this chain."""
        return f"graph '{self._root.name}'"

    def _no_tail_reason(self) -> str:
        fork = self._root._label_of(self._fork) if self._fork else ""
        if self._fork_kind == "pick":
            return f"after {fork} start each branch with .on(label)"
        if self._fork_kind == "parallel":
            return f"after parallel() at {fork} start each branch with .branch()"
        if self._root._end_id is not None and self is self._root:
            return "the graph already ended with .end(); add nodes before it or use connect()"
        return "there is no node to connect it from"

    def _targets_ready(self, what: str) -> None:
        """Refuse to add something that nothing would connect to."""
        if self._tail is None and not self._open_ends and self._root._nodes:
            raise ValueError(
                f"cannot add {what} to {self._where()}: it would have no incoming edge; "
                + self._no_tail_reason()
            )

    def _connect_into(self, target: UUID) -> None:
        """Connect the open ends and the tail of this chain to ``target``."""
        root = self._root
        for source, label in self._open_ends:
            root._link(source, target, label)
        if self._tail is not None:
            root._link(self._tail, target, self._tail_label)

    def _attach(self, node: GraphNode) -> Self:
        self._targets_ready(f"'{node.name}' ({node.type_name})")
        self._root._register(node)
        self._connect_into(node.id)
        self._open_ends = []
        self._tail_label = ""
        if node.traverse_out is TraverseOut.SPAWN_PICKED:
            # A node that picks its successor: what follows is a branch, via on().
            self._tail, self._fork, self._fork_kind = None, node.id, "pick"
        else:
            self._tail, self._fork, self._fork_kind = node.id, None, None
        return self

    def _add(
        self,
        node_type: NodeType | str,
        name: str,
        metadata: dict[str, Any],
        kwargs: Mapping[str, Any],
        *,
        llm: bool = False,
    ) -> Self:
        return self._attach(_make_node(node_type, name, metadata, kwargs, llm=llm))

    # -- LLM nodes ----------------------------------------------------------

    def instruction(
        self,
        name: str,
        model: str = "",
        provider: str = "",
        temperature: float = 0.5,
        system_instruction: str = "",
        **kwargs: Any,
    ) -> Self:
        """An Instruction1 node: LLM text generation without tools (streams)."""
        meta = _llm_metadata(model, provider, temperature, system_instruction)
        return self._add(NodeType.INSTRUCTION, name, meta, kwargs, llm=True)

    def summarize(
        self,
        name: str,
        model: str = "",
        provider: str = "",
        temperature: float = 0.5,
        system_instruction: str = "Summarize the given conversation concisely.",
        **kwargs: Any,
    ) -> Self:
        """A Summarize1 node: the LLM condenses the conversation."""
        meta = _llm_metadata(model, provider, temperature, system_instruction)
        return self._add(NodeType.SUMMARIZE, name, meta, kwargs, llm=True)

    def agent(
        self,
        name: str = "Agent",
        model: str = "",
        provider: str = "",
        system_instruction: str = "",
        tools: list[str] | None = None,
        max_iterations: int = 25,
        temperature: float = 0.5,
        **kwargs: Any,
    ) -> Self:
        """An Agent1 node: an LLM loop that may call ``tools`` up to ``max_iterations`` times."""
        meta = _llm_metadata(model, provider, temperature, system_instruction)
        meta["program_version_ids"] = list(tools or [])
        meta["max_iterations"] = max_iterations
        return self._add(NodeType.AGENT, name, meta, kwargs, llm=True)

    def vision(
        self,
        name: str,
        model: str = "",
        provider: str = "",
        system_instruction: str = "",
        temperature: float = 0.5,
        **kwargs: Any,
    ) -> Self:
        """An InstructionImageVision1 node: LLM image analysis."""
        meta = _llm_metadata(model, provider, temperature, system_instruction, vision=True)
        return self._add(NodeType.INSTRUCTION_IMAGE_VISION, name, meta, kwargs, llm=True)

    def instruction_form(
        self,
        name: str,
        schema: type[BaseModel] | Mapping[str, Any],
        model: str = "",
        provider: str = "",
        temperature: float = 0.5,
        system_instruction: str = "",
        **kwargs: Any,
    ) -> Self:
        """An InstructionForm1 node: structured output. ``schema`` is a pydantic model
        (its JSON schema is stored, and metadata ``schema_model`` names it as
        ``module:QualName`` so the LLM pack validates with it) or a JSON schema of an
        object. The parsed answer is the node's ``data["parsed"]``."""
        meta = _llm_metadata(model, provider, temperature, system_instruction, stream=False)
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            meta["schema"] = schema.model_json_schema()
            meta["schema_model"] = f"{schema.__module__}:{schema.__qualname__}"
        elif isinstance(schema, Mapping):
            meta["schema"] = dict(schema)
        else:
            raise ValueError(
                f"instruction_form('{name}'): schema must be a pydantic model or a JSON "
                f"schema dict, got {type(schema).__name__}"
            )
        return self._add(INSTRUCTION_FORM, name, meta, kwargs, llm=True)

    # -- branching ----------------------------------------------------------

    def decision(
        self,
        name: str,
        model: str = "",
        provider: str = "",
        temperature: float = 0.5,
        prefix_message: str = "",
        suffix_message: str = "",
        options: list[str] | None = None,
        system_instruction: str = "",
        **kwargs: Any,
    ) -> Self:
        """A Decision1 node: the LLM picks one branch; add them with ``on(option)``."""
        meta = _llm_metadata(model, provider, temperature, system_instruction, stream=False)
        meta["prefix_message"] = prefix_message
        meta["suffix_message"] = suffix_message
        meta["options"] = list(options or [])
        return self._add(NodeType.DECISION, name, meta, kwargs, llm=True)

    def static_decision(self, name: str, expression: str = "", **kwargs: Any) -> Self:
        """A StaticDecision1 node: an expression picks the branch, no LLM."""
        return self._add(NodeType.STATIC_DECISION, name, {"expression": expression}, kwargs)

    def user_decision(self, name: str, **kwargs: Any) -> Self:
        """A UserDecision1 node: the user picks the branch (``on(label)`` per choice)."""
        return self._add(NodeType.USER_DECISION, name, {}, kwargs)

    def if_node(self, name: str, expression: str = "", **kwargs: Any) -> Self:
        """An If1 node: ``expression`` picks ``on("true")`` or ``on("false")``."""
        return self._add(NodeType.IF, name, {"if_expression": expression}, kwargs)

    def switch(
        self,
        name: str,
        cases: Sequence[Mapping[str, Any]] | Mapping[str, str] | None = None,
        default: str = "",
        **kwargs: Any,
    ) -> Self:
        """A Switch1 node: the first case whose expression holds picks its branch.

        ``cases`` is ``[{"label": ..., "expression": ...}]`` or ``{label: expression}``;
        ``default`` labels the branch taken when no case holds. Branches: ``on(label)``.
        """
        default = kwargs.pop("default_edge_id", default)  # 0.1.5's name
        meta = {"cases": _normalize_cases(cases), "default": default}
        return self._add(NodeType.SWITCH, name, meta, kwargs)

    def on(self, label: str) -> BranchBuilder[Self]:
        """Start the branch that the last decision, If or Switch node takes for
        ``label`` (or the deadline branch of a ``user(..., on_timeout=Take(label))``)."""
        if not isinstance(label, str) or not label:
            raise ValueError(f"on() needs a non-empty label, got {label!r}")
        if self._fork is not None and self._fork_kind == "timeout":
            node = self._root._nodes_by_id[self._fork]
            late = node.metadata["on_timeout_edge"]
            if label != late:
                raise ValueError(
                    f"on({label!r}) in {self._where()}: user node '{node.name}' takes only "
                    f"its on_timeout edge {late!r}"
                )
            return BranchBuilder(self, self._fork, label, rejoins=False)
        if self._fork is None or self._fork_kind != "pick":
            hint = (
                "after parallel() start branches with .branch()"
                if self._fork_kind == "parallel"
                else "it must follow decision(), if_node(), switch(), static_decision(), "
                "user_decision() or another node that picks its successor"
            )
            raise ValueError(f"on({label!r}) in {self._where()}: {hint}")
        return BranchBuilder(self, self._fork, label)

    def parallel(self, name: str = "Parallel") -> Self:
        """Fan out from the last node: every ``branch()`` runs. ``name`` is unused
        (kept from 0.1.5): the last node itself becomes the fan-out point."""
        if self._tail is None or self._tail_label:
            raise ValueError(
                f"parallel() in {self._where()} needs a node to fan out from; add one first"
            )
        self._root._nodes_by_id[self._tail].traverse_out = TraverseOut.SPAWN_ALL
        self._fork, self._fork_kind, self._tail = self._tail, "parallel", None
        return self

    def branch(self) -> BranchBuilder[Self]:
        """Start one more branch of the last ``parallel()`` fan-out."""
        if self._fork is None or self._fork_kind != "parallel":
            raise ValueError(
                f"branch() in {self._where()} must follow parallel(); "
                "branches of a decision start with .on(label)"
            )
        return BranchBuilder(self, self._fork, "")

    def merge(
        self,
        name: str = "Merge",
        model: str = "",
        provider: str = "",
        temperature: float = 0.5,
        system_instruction: str = "",
        prefix_message: str = "Compress following conversations into one",
        suffix_message: str = "",
        **kwargs: Any,
    ) -> Self:
        """A Merge1 node (AwaitAll). Without ``model``, ``provider`` and
        ``system_instruction`` the engine joins the closed branches' texts, one per
        line in the order of the incoming edges (no LLM, no plugin); with any of them
        the LLM pack combines them (``prefix_message``, ``suffix_message``)."""
        meta = _llm_metadata(model, provider, temperature, system_instruction)
        meta["prefix_message"] = prefix_message
        meta["suffix_message"] = suffix_message
        return self._add(NodeType.MERGE, name, meta, kwargs, llm=True)

    def static_merge(self, name: str = "Merge", text: str = "", **kwargs: Any) -> Self:
        """A StaticMerge1 node (AwaitAll): joins the closed branches without an LLM."""
        return self._add(NodeType.STATIC_MERGE, name, {"static_text": text}, kwargs)

    def break_node(
        self, name: str = "Break", targets: list[str] | None = None, **kwargs: Any
    ) -> Self:
        """A Break1 node: stops collecting earlier messages (``targets``: [], ["tools"], ...)."""
        return self._add(NodeType.BREAK, name, {"break_targets": list(targets or [])}, kwargs)

    # -- user interaction ---------------------------------------------------

    def user(
        self,
        name: str = "User Input",
        prompts: list[str] | None = None,
        *,
        timeout: str | float | None = None,
        on_timeout: str | Take | None = None,
        **kwargs: Any,
    ) -> Self:
        """A User1 node: the flow pauses for the user's answer. With ``timeout`` (a
        duration: ``"24h"``, seconds) the wait has a deadline: passed unanswered,
        the node is answered with ``on_timeout`` (a text), or with
        ``on_timeout=Take("late")`` takes its edge labelled ``"late"``, begun with
        ``.on("late")`` right after this node (docs/time.md)."""
        meta: dict[str, Any] = {"text_snippets": list(prompts or [])}
        if (timeout is None) != (on_timeout is None):
            raise ValueError(f"user('{name}'): give timeout and on_timeout together")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (str, int, float)):
                raise ValueError(f"user('{name}'): timeout must be a text like '24h' or seconds")
            meta["timeout"] = timeout if isinstance(timeout, str) else float(timeout)
            if isinstance(on_timeout, Take):
                if not isinstance(on_timeout.label, str) or not on_timeout.label:
                    raise ValueError(f"user('{name}'): Take() needs a non-empty edge label")
                meta["on_timeout_edge"] = on_timeout.label
            else:
                meta["on_timeout"] = str(on_timeout)
        self._add(NodeType.USER, name, meta, kwargs)
        if isinstance(on_timeout, Take):  # .on(label) begins the deadline's branch
            self._fork, self._fork_kind = self._tail, "timeout"
        return self

    def user_form(
        self, name: str, parameters: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> Self:
        """A UserForm1 node: the flow pauses until the user submits the form."""
        return self._add(NodeType.USER_FORM, name, {"parameters": list(parameters or [])}, kwargs)

    # -- data ---------------------------------------------------------------

    def static(self, name: str, text: str = "", **kwargs: Any) -> Self:
        """A Static1 node: outputs ``text`` as it is."""
        return self._add(NodeType.STATIC, name, {"static_text": text}, kwargs)

    def text(self, name: str, template: str = "", **kwargs: Any) -> Self:
        """A Text1 node: renders ``template``."""
        return self._add(NodeType.TEXT, name, {"text": template}, kwargs)

    def var(self, name: str, variable: str = "", expression: str = "", **kwargs: Any) -> Self:
        """A Var1 node: evaluates ``expression`` and stores it as ``variable``."""
        return self._add(NodeType.VAR, name, {"name": variable, "expression": expression}, kwargs)

    def text_to_variable(
        self, name: str, variable: str = "", source: str = "", **kwargs: Any
    ) -> Self:
        """A TextToVariable1 node: stores text output as ``variable``."""
        meta = {"variable": variable, "source": source}
        return self._add(NodeType.TEXT_TO_VARIABLE, name, meta, kwargs)

    def code(self, name: str, code: str = "", filename: str = "", **kwargs: Any) -> Self:
        """A Code1 node: code run by the runtime environment."""
        return self._add(NodeType.CODE, name, {"code": code, "filename": filename}, kwargs)

    def program_runner(self, name: str, program: str = "", **kwargs: Any) -> Self:
        """A ProgramRunner1 node: runs a program or tool."""
        return self._add(NodeType.PROGRAM_RUNNER, name, {"program": program}, kwargs)

    # -- memory -------------------------------------------------------------

    def read_memory(
        self,
        name: str,
        memory_name: str = "",
        memory_type: str = "flow",
        variable_names: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A ReadMemory1 node: loads ``variable_names`` from memory (``flow`` or ``user``)."""
        meta = {
            "memory_name": memory_name,
            "memory_type": memory_type,
            "variable_names": list(variable_names or []),
        }
        return self._add(NodeType.READ_MEMORY, name, meta, kwargs)

    def write_memory(
        self,
        name: str,
        memory_name: str = "",
        memory_type: str = "flow",
        variables: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A WriteMemory1 node: stores ``variables`` (``[{"name", "expression"}]``)."""
        meta = {
            "memory_name": memory_name,
            "memory_type": memory_type,
            "variables": list(variables or []),
        }
        return self._add(NodeType.WRITE_MEMORY, name, meta, kwargs)

    def update_memory(
        self,
        name: str,
        memory_name: str = "",
        memory_type: str = "flow",
        variables: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> Self:
        """An UpdateMemory1 node: updates existing memory ``variables``."""
        meta = {
            "memory_name": memory_name,
            "memory_type": memory_type,
            "variables": list(variables or []),
        }
        return self._add(NodeType.UPDATE_MEMORY, name, meta, kwargs)

    def flow_memory(
        self,
        name: str = "Flow Memory",
        memory_name: str = "",
        initial_data: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A FlowMemory1 node: defines flow-scoped memory and its initial data."""
        meta = {"memory_name": memory_name, "initial_data": list(initial_data or [])}
        return self._add(NodeType.FLOW_MEMORY, name, meta, kwargs)

    def user_memory(
        self,
        name: str = "User Memory",
        memory_name: str = "",
        initial_data: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A UserMemory1 node: defines user-scoped memory that outlives flows."""
        meta = {"memory_name": memory_name, "initial_data": list(initial_data or [])}
        return self._add(NodeType.USER_MEMORY, name, meta, kwargs)

    # -- other --------------------------------------------------------------

    def comment(self, name: str, text: str = "", **kwargs: Any) -> Self:
        """A Comment1 node: documentation only."""
        return self._add(NodeType.COMMENT, name, {"comment": text}, kwargs)

    def sub_graph(self, name: str, graph: str | os.PathLike[str], **kwargs: Any) -> Self:
        """A SubAssistant1 node that runs another graph, named by file path or
        registered name (metadata ``graph``); see `use` to inline one instead."""
        return self._add(NodeType.SUB_ASSISTANT, name, {"graph": os.fspath(graph)}, kwargs)

    def sub_agent(self, name: str, graph_id: str = "", **kwargs: Any) -> Self:
        """0.1.5's `sub_graph`: writes ``graph`` and 0.1.5's ``sub_assistant_id``."""
        meta = {"graph": graph_id, "sub_assistant_id": graph_id}
        return self._add(NodeType.SUB_ASSISTANT, name, meta, kwargs)

    def back(self, name: str = "Back", max_iterations: int | None = None, **kwargs: Any) -> Self:
        """A Back1 node: the flow loops back to Start from here, at most
        ``max_iterations`` times (else the runner's visit limit); in a sub-graph it
        returns to the parent graph instead, with what reached it. Nothing can follow
        it on this chain."""
        meta: dict[str, Any] = {}
        if max_iterations is not None:
            if isinstance(max_iterations, bool) or not isinstance(max_iterations, int):
                raise ValueError(f"back('{name}'): max_iterations must be an int >= 1")
            if max_iterations < 1:
                raise ValueError(f"back('{name}'): max_iterations must be an int >= 1")
            meta["max_iterations"] = max_iterations
        self._add(NodeType.BACK, name, meta, kwargs)
        self._tail, self._fork, self._fork_kind = None, None, None
        return self

    def sleep(
        self,
        name: str,
        duration: str | float | None = None,
        *,
        until: str | datetime | None = None,
        **kwargs: Any,
    ) -> Self:
        """A Sleep1 node: the flow waits ``duration`` (``"90s"``, ``"10m"``, ``"24h"``,
        ``"1d12h"`` or seconds) or until ``until`` (an ISO 8601 time with a zone, or
        an aware datetime), then passes on what reached it. The wake time is stored
        with the flow: a crash does not restart the sleep (docs/time.md)."""
        if (duration is None) == (until is None):
            raise ValueError(f"sleep('{name}'): give a duration or until=, not both or neither")
        meta: dict[str, Any] = {}
        if duration is not None:
            if isinstance(duration, bool) or not isinstance(duration, (str, int, float)):
                raise ValueError(f"sleep('{name}'): duration must be a text like '90s' or seconds")
            if not isinstance(duration, str) and duration < 0:
                raise ValueError(f"sleep('{name}'): duration must not be negative")
            meta["duration"] = duration if isinstance(duration, str) else float(duration)
        else:
            when = until if isinstance(until, datetime) else _iso_time(name, str(until))
            if when.tzinfo is None:
                raise ValueError(f"sleep('{name}'): until={until!r} has no time zone")
            meta["until"] = when.isoformat()
        return self._add(NodeType.SLEEP, name, meta, kwargs)

    def map(
        self,
        name: str,
        items: str,
        node: str | GraphNode | None = None,
        *,
        graph: str | os.PathLike[str] | None = None,
        max_concurrency: int = 8,
        on_item_error: str = "fail",
        **kwargs: Any,
    ) -> Self:
        """A Map1 node: ``items`` (an expression, as for ``var``) gives a list at run
        time; ``node`` runs once per item, at most ``max_concurrency`` at once, each
        with the item as its input and ``item``/``index`` in its memory; the results,
        in item order, go to flow memory under ``name`` and on as a JSON list.
        ``node`` is a `GraphNode` or a node type (``"Instruction1"``,
        ``"acme.Classify"``), added to the graph unconnected as ``"<name> item"``;
        or ``graph`` (as for `sub_graph`): each item runs that graph, a SubAssistant1
        node ``"<name> item"``, with the item as its input.
        ``on_item_error``: ``"fail"`` fails the flow, ``"skip"`` leaves the item
        out, ``"collect"`` puts ``{"error": ...}`` in its place (docs/map.md)."""
        if not isinstance(items, str) or not items.strip():
            raise ValueError(f"map('{name}'): items must be an expression, like 'memory.docs'")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise ValueError(f"map('{name}'): max_concurrency must be a whole number")
        if max_concurrency < 1:
            raise ValueError(f"map('{name}'): max_concurrency must be at least 1")
        if on_item_error not in MAP_ITEM_ERRORS:
            raise ValueError(
                f"map('{name}'): on_item_error must be one of "
                f"{', '.join(repr(m) for m in MAP_ITEM_ERRORS)}, not {on_item_error!r}"
            )
        if (node is None) == (graph is None):
            raise ValueError(f"map('{name}'): give node= or graph=, not both or neither")
        if graph is not None:
            meta_item = {"graph": os.fspath(graph)}
            item = _make_node(NodeType.SUB_ASSISTANT, f"{name} item", meta_item, {})
        elif isinstance(node, GraphNode):
            item = node
        else:
            assert node is not None
            item = _make_node(node, f"{name} item", {}, {})
        meta: dict[str, Any] = {
            "items": items,
            "node": str(item.id),
            "max_concurrency": max_concurrency,
            "on_item_error": on_item_error,
        }
        self._add(NodeType.MAP, name, meta, kwargs)
        self._root._register(item)  # unconnected: only the map runs it
        return self

    def node(
        self,
        node_type: NodeType | str,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Self:
        """A node of any type, including custom ones (``"acme.Classifier"``).

        ``fields`` may set ``id``, ``position`` and the node options; other keyword
        arguments join ``metadata``. Known types get the builder's type defaults.
        """
        own: dict[str, Any] = {k: fields.pop(k) for k in ("id", "position") if k in fields}
        node = _make_node(node_type, name, dict(metadata or {}), fields, fields=own)
        return self._attach(node)

    def use(self, sub_graph: GraphSpec | GraphBuilder) -> Self:
        """Inline ``sub_graph`` here without its Start and End nodes, with fresh ids."""
        self._targets_ready(f"graph '{sub_graph.name}'")
        entries, exits, edges = self._root._inline(sub_graph)
        if not entries:
            return self
        for entry in entries:
            self._connect_into(entry)
        self._root._edges += edges
        self._fork = self._fork_kind = None
        self._tail_label = ""
        if len(exits) == 1 and not exits[0][1]:
            self._tail, self._open_ends = exits[0][0], []
        else:
            self._tail, self._open_ends = None, exits
        return self

    def connect(self, from_name: str, to_name: str, label: str = "") -> Self:
        """Add an edge between two existing nodes named ``from_name`` and ``to_name``."""
        root = self._root
        root._link(root._find(from_name), root._find(to_name), label)
        return self

    def edge(self, source_id: UUID, target_id: UUID, label: str = "", is_main: bool = True) -> Self:
        """Add an edge between two node ids."""
        self._root._link(source_id, target_id, label, is_main)
        return self


class BranchBuilder(_Chain, Generic[P]):
    """One branch of a decision (``on(label)``) or of a parallel fan-out (``branch()``).

    It has every node method of `GraphBuilder`, including nested ``on()``/``branch()``;
    ``end()`` closes it and returns the parent it was opened from.
    """

    def __init__(self, parent: P, fork: UUID, label: str, *, rejoins: bool = True) -> None:
        super().__init__()
        self._root = parent._root
        self._parent = parent
        #: Closed, its ends join the parent's next node (False: a deadline branch,
        #: which gets an End of its own, docs/time.md).
        self._rejoins = rejoins
        self._tail, self._tail_label = fork, label
        self._origin, self._label = fork, label
        self._closed = False
        self._root._open_branches[self] = None

    def _where(self) -> str:
        kind = f"branch '{self._label}'" if self._label else "parallel branch"
        return f"{kind} of {self._root._label_of(self._origin)} in graph '{self._root.name}'"

    def _attach(self, node: GraphNode) -> Self:
        self._check_open()
        return super()._attach(node)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self._where()} was already closed with .end()")

    def end(self) -> P:
        """Close this branch; its last node (or the ends of its own closed branches)
        connects to whatever the parent adds next, or to End at ``build()``."""
        self._check_open()
        ends = list(self._open_ends)
        if self._tail is not None:
            ends.append((self._tail, self._tail_label))
        if self._rejoins:
            self._parent._open_ends.extend(ends)
        else:
            self._root._own_ends.extend(ends)
        self._closed = True
        del self._root._open_branches[self]
        return self._parent

    def build(self, validate: bool = True) -> NoReturn:
        """Always fails: a branch must be closed with ``end()`` before ``build()``."""
        raise ValueError(f"build() called inside {self._where()}: close it with .end() first")

    to_graph = build


class GraphBuilder(_Chain):
    """Fluent builder of a `GraphSpec`. As in quartermaster-graph 0.1.5 a graph
    starts with ``start()``; with ``auto_start=True`` (the default of `Graph`, as
    quartermaster 0.2+ builders did) the first node added without it gets a Start
    node before it.

    >>> spec = (
    ...     GraphBuilder("Support Agent")
    ...     .start()
    ...     .instruction("Classify", model="gpt-4o")
    ...     .decision("Route", options=["billing", "technical"])
    ...     .on("billing").instruction("Handle billing").end()
    ...     .on("technical").instruction("Handle technical").end()
    ...     .build()
    ... )
    >>> [node.name for node in spec.nodes]
    ['Start', 'Classify', 'Route', 'Handle billing', 'Handle technical', 'End', 'End']
    """

    def __init__(self, name: str, description: str = "", *, auto_start: bool = False) -> None:
        super().__init__()
        self._root = self
        self._auto_start = auto_start
        self._name = name
        self.description = description
        self._nodes: list[GraphNode] = []
        self._edges: list[GraphEdge] = []
        self._nodes_by_id: dict[UUID, GraphNode] = {}
        self._ids_by_name: dict[str, list[UUID]] = {}
        self._start_id: UUID | None = None
        self._end_id: UUID | None = None
        self._open_branches: dict[BranchBuilder[Any], None] = {}
        #: Ends of closed branches that get an End node each at build (deadline branches).
        self._own_ends: list[tuple[UUID, str]] = []

    @property
    def name(self) -> str:
        """The graph's name (``GraphSpec.name`` of what `build` returns)."""
        return self._name

    @property
    def nodes(self) -> list[GraphNode]:
        """The nodes added so far (a copy of the list)."""
        return list(self._nodes)

    @property
    def edges(self) -> list[GraphEdge]:
        """The edges added so far (a copy of the list)."""
        return list(self._edges)

    @property
    def start_node_id(self) -> UUID:
        """The Start node's id; ValueError before ``start()``."""
        if self._start_id is None:
            raise ValueError(f"No start node in graph '{self._name}': call .start() first")
        return self._start_id

    # -- queries (0.1.5's builder API; the built GraphSpec has the same) ----

    def get_node(self, node_id: UUID) -> GraphNode | None:
        """The node added with this id, or None."""
        return self._nodes_by_id.get(node_id)

    def get_successors(self, node_id: UUID) -> list[GraphNode]:
        """Distinct targets of the node's edges added so far, in edge order."""
        targets = dict.fromkeys(e.target_id for e in self._edges if e.source_id == node_id)
        return [self._nodes_by_id[t] for t in targets if t in self._nodes_by_id]

    def get_edges_from(self, node_id: UUID) -> list[GraphEdge]:
        """The edges added so far that start at the node."""
        return [e for e in self._edges if e.source_id == node_id]

    # -- bookkeeping --------------------------------------------------------

    def _register(self, node: GraphNode) -> None:
        if node.id in self._nodes_by_id:
            other = self._nodes_by_id[node.id]
            raise ValueError(f"node '{node.name}' has the same id as {other.describe()}")
        if node.position is None:
            # A top-to-bottom column in the order of adding, as 0.1.5 laid nodes out,
            # so that editors can draw a built graph.
            node.position = NodePosition(x=0, y=_ROW_HEIGHT * len(self._nodes))
        self._nodes.append(node)
        self._nodes_by_id[node.id] = node
        self._ids_by_name.setdefault(node.name, []).append(node.id)

    def _link(self, source: UUID, target: UUID, label: str = "", is_main: bool = True) -> None:
        self._edges.append(
            GraphEdge(source_id=source, target_id=target, label=label, is_main=is_main)
        )

    def _label_of(self, node_id: UUID | None) -> str:
        node = self._nodes_by_id.get(node_id) if node_id else None
        return f"'{node.name}' ({node.type_name})" if node else "?"

    def _find(self, name: str) -> UUID:
        ids = self._ids_by_name.get(name, [])
        if len(ids) == 1:
            return ids[0]
        if ids:
            raise ValueError(
                f"connect(): {len(ids)} nodes of graph '{self._name}' are named '{name}' "
                f"(ids {', '.join(map(str, ids))}); use edge(source_id, target_id)"
            )
        close = difflib.get_close_matches(name, list(self._ids_by_name), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"connect(): graph '{self._name}' has no node named '{name}'{hint}")

    def _end_node(self, kwargs: Mapping[str, Any]) -> UUID:
        """The graph's single End node, created on first use (with ``kwargs``).

        Once the main chain has ended nothing more can reach End except through
        `build`, which passes no options, so options never meet an existing End."""
        if self._end_id is None:
            end = _make_node(NodeType.END, "End", {}, kwargs)
            self._register(end)
            self._end_id = end.id
        return self._end_id

    def _inline(
        self, sub_graph: GraphSpec | GraphBuilder
    ) -> tuple[list[UUID], list[tuple[UUID, str]], list[GraphEdge]]:
        """Add the nodes of ``sub_graph`` but Start/End, with fresh ids; return its entry
        nodes (after Start), exits ((node, edge label) before End) and inner edges."""
        if sub_graph is self:
            raise ValueError(f"use(): graph '{self._name}' cannot inline itself")
        if isinstance(sub_graph, GraphBuilder):
            nodes, edges = sub_graph._nodes, sub_graph._edges
            pending = list(sub_graph._open_ends)
            if sub_graph._tail is not None:
                pending.append((sub_graph._tail, sub_graph._tail_label))
        else:
            nodes, edges, pending = sub_graph.nodes, sub_graph.edges, []
        start_type, end_type = NodeType.START.value, NodeType.END.value
        dropped = {n.id: n.type_name for n in nodes if n.type_name in (start_type, end_type)}
        fresh: dict[UUID, UUID] = {}
        for node in nodes:
            if node.id not in dropped and node.id not in fresh:
                copy = node.model_copy(update={"id": uuid4()}, deep=True)
                fresh[node.id] = copy.id
                self._register(copy)
        entries: dict[UUID, None] = {}
        exits: dict[tuple[UUID, str], None] = {}
        has_incoming: set[UUID] = set()
        has_outgoing: set[UUID] = set()
        inner: list[GraphEdge] = []
        for edge in edges:
            source, target = fresh.get(edge.source_id), fresh.get(edge.target_id)
            if source and target:
                inner.append(
                    GraphEdge(
                        source_id=source,
                        target_id=target,
                        label=edge.label,
                        is_main=edge.is_main,
                        points=list(edge.points),
                    )
                )
                has_outgoing.add(source)
                has_incoming.add(target)
            elif target and dropped.get(edge.source_id) == start_type:
                entries[target] = None
            elif source and dropped.get(edge.target_id) == end_type:
                exits[(source, edge.label)] = None
        for node_id, label in pending:
            if node_id in fresh:
                exits[(fresh[node_id], label)] = None
        kept = list(fresh.values())
        if not entries:
            entries = dict.fromkeys(n for n in kept if n not in has_incoming) or dict.fromkeys(
                kept[:1]
            )
        if not exits:
            exits = {(n, ""): None for n in kept if n not in has_outgoing}
        return list(entries), list(exits), inner

    def _attach(self, node: GraphNode) -> Self:
        # Graph("x").user()... : the first node of a graph without start() gets a
        # Start node before it, as quartermaster 0.2+ builders did.
        if self._auto_start and not self._nodes and node.type_name != NodeType.START.value:
            self.start()
        return super()._attach(node)

    # -- start and end ------------------------------------------------------

    def start(self, **kwargs: Any) -> Self:
        """Add the Start node; every graph has exactly one. Optional with
        ``auto_start`` (`Graph`): the first node added without it gets one first."""
        if self._start_id is not None:
            raise ValueError(f"start() called twice: graph '{self._name}' already has a Start node")
        self._attach(_make_node(NodeType.START, "Start", {}, kwargs))
        self._start_id = self._nodes[-1].id
        return self

    def end(self, **kwargs: Any) -> Self:
        """Connect the last node (and the ends of closed branches) to the graph's single
        End node, created on first use (``kwargs`` set its options and metadata).
        Nothing can be added after it."""
        if self._tail is None and not self._open_ends:
            raise ValueError(
                f"end() in graph '{self._name}': nothing to connect to End; "
                + self._no_tail_reason()
            )
        end_id = self._end_node(kwargs)
        self._connect_into(end_id)
        self._tail, self._tail_label, self._open_ends = None, "", []
        self._fork = self._fork_kind = None
        return self

    # -- output -------------------------------------------------------------

    def to_graph(self, validate: bool = True, agent_id: UUID | None = None) -> GraphSpec:
        """The `GraphSpec`. Each closed branch that nothing continued gets an End node
        of its own, and a last node still open is connected to the graph's End.
        Raises `GraphValidationError` listing every error unless ``validate`` is False."""
        if self._start_id is None:
            raise ValueError(f"graph '{self._name}' has no start node: call .start() first")
        if self._open_branches:
            unclosed = next(iter(self._open_branches))
            raise ValueError(f"{unclosed._where()} was never closed with .end()")
        # Branches closed with .end() that nothing continued each get their own End
        # node, as quartermaster-graph 0.1.5 built them (docs/builder.md#ends).
        for node_id, label in [*self._own_ends, *self._open_ends]:
            end = _make_node(NodeType.END, "End", {}, {})
            self._register(end)
            self._link(node_id, end.id, label)
        self._open_ends, self._own_ends = [], []
        if self._tail is not None:
            self.end()
        spec = GraphSpec(
            name=self._name,
            agent_id=agent_id or uuid4(),
            start_node_id=self._start_id,
            nodes=list(self._nodes),
            edges=list(self._edges),
        )
        if validate:
            check_graph(spec)
        return spec

    def build(self, validate: bool = True) -> GraphSpec:
        """Same as `to_graph`: the validated `GraphSpec`."""
        return self.to_graph(validate=validate)

    def to_agent(self, validate: bool = True) -> Agent:
        """An `Agent` record for this graph (0.1.5 API); builds (and validates) it first."""
        self.to_graph(validate=validate)
        now = datetime.now(UTC)
        return Agent(name=self._name, description=self.description, created_at=now, updated_at=now)


#: The name of `BranchBuilder` in quartermaster-graph 0.1.5, which code imports.
_BranchBuilder = BranchBuilder


class Graph(GraphBuilder):
    """`GraphBuilder` that adds its own Start node (quartermaster 0.2+):
    ``Graph("Chat").user("Ask").instruction("Reply").build()``. ``start()`` may
    still open the chain."""

    def __init__(self, name: str, description: str = "", *, auto_start: bool = True) -> None:
        super().__init__(name, description, auto_start=auto_start)


def _iso_time(name: str, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"sleep('{name}'): until={text!r} is not an ISO 8601 time "
            "(like 2030-01-01T09:00:00+00:00)"
        ) from None

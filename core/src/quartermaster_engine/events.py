"""Flow events: small typed records of what happens while a flow runs.

Every event carries the flow id, a per-flow sequence number (``seq``, counting
from 1 and continued across resume) and a timestamp (``ts``, seconds since the
epoch). Events go to the runner's ``on_event`` callback, to ``run_async``
iterators and to every configured event sink. ``to_dict`` / ``to_json`` give a
JSON form with a ``type`` field; `event_from_dict` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar
from uuid import UUID

from quartermaster_graph.enums import NodeType

_NO_NODE = UUID(int=0)
_PLAIN = frozenset({str, int, float, bool, type(None)})
#: Field names of each event class, read once (dataclasses.fields is slow).
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _json_value(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, NodeType):
        return value.value
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


@dataclass(slots=True)
class FlowEvent:
    """Base of all events."""

    flow_id: UUID
    seq: int = field(default=0, kw_only=True)
    ts: float = field(default=0.0, kw_only=True)
    #: Set on the events of a child flow (a sub-graph run by a SubAssistant1 node).
    parent_flow_id: UUID | None = field(default=None, kw_only=True)

    @property
    def type(self) -> str:
        """The event's type name (``"NodeStarted"``)."""
        return type(self).__name__

    def summary(self) -> str | None:
        """What a progress display (the console sink) shows of an event a plugin
        defines: its type and node by default; None shows nothing. The engine's own
        events have lines of their own."""
        name = getattr(self, "node_name", "") or ""
        return f"{self.type} {name}" if name else self.type

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a ``type`` field."""
        cls = type(self)
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
        data: dict[str, Any] = {"type": cls.__name__}
        for name in names:
            value = getattr(self, name)
            # Most fields are plain already: the event log encodes every event.
            data[name] = value if type(value) in _PLAIN else _json_value(value)
        return data

    def to_json(self) -> str:
        """One-line JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False)


E = TypeVar("E", bound=FlowEvent)


def _fresh(cls: type[E], flow_id: UUID) -> E:
    """A ``cls`` event with the base fields set, not yet numbered (for the runner's
    fast constructors: no keyword binding on the hot path)."""
    event = object.__new__(cls)
    event.flow_id = flow_id
    event.seq = 0
    event.ts = 0.0
    event.parent_flow_id = None
    return event


def event_from_dict(data: dict[str, Any]) -> FlowEvent:
    """Rebuild an event from `FlowEvent.to_dict` output."""
    kind = data.get("type")
    cls = _event_types().get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        # Annotations are strings here (postponed evaluation): a field typed UUID,
        # or UUID | None, is read back as a UUID; other strings stay strings.
        if isinstance(value, str) and str(f.type).split(" |")[0] == "UUID":
            value = UUID(value)
        elif isinstance(value, list) and str(f.type) == "list[UUID]":
            value = [UUID(v) for v in value]
        kwargs[f.name] = value
    if "node_type" in kwargs and isinstance(kwargs["node_type"], str):
        kwargs["node_type"] = _as_node_type(kwargs["node_type"])
    return cls(**kwargs)


def _event_types() -> dict[str, type[FlowEvent]]:
    # Subclasses defined by plugins count too, so look them up at call time.
    found: dict[str, type[FlowEvent]] = {}
    todo: list[type[FlowEvent]] = [FlowEvent]
    while todo:
        cls = todo.pop()
        # dataclass(slots=True) replaces the class it decorates; the discarded
        # original (no __slots__ of its own) may linger until collected.
        if cls.__name__ not in found or "__slots__" in cls.__dict__:
            found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def _as_node_type(value: str) -> NodeType | str:
    try:
        return NodeType(value)
    except ValueError:
        return value


@dataclass(slots=True)
class FlowStarted(FlowEvent):
    """A flow began."""

    input: str = ""
    graph_name: str = ""


@dataclass(slots=True)
class FlowResumed(FlowEvent):
    """A paused or interrupted flow continues (``reason``: "resume" or "recover"),
    possibly in another process than the one that started it (``graph_name`` names its
    graph as `FlowStarted` did)."""

    reason: str = "resume"
    node_id: UUID | None = None
    graph_name: str = ""


@dataclass(slots=True)
class NodeStarted(FlowEvent):
    """An activation began."""

    node_id: UUID = _NO_NODE
    node_type: NodeType | str = NodeType.START
    node_name: str = ""
    visit: int = 1
    attempt: int = 1

    @classmethod
    def _engine(
        cls,
        flow_id: UUID,
        node_id: UUID,
        node_type: NodeType | str,
        name: str,
        visit: int,
        attempt: int,
    ) -> NodeStarted:
        """The runner's fast constructor (no keyword binding; once per activation)."""
        event = _fresh(cls, flow_id)
        event.node_id = node_id
        event.node_type = node_type
        event.node_name = name
        event.visit = visit
        event.attempt = attempt
        return event


@dataclass(slots=True)
class TokenGenerated(FlowEvent):
    """A streamed token."""

    node_id: UUID = _NO_NODE
    token: str = ""


@dataclass(slots=True)
class NodeFinished(FlowEvent):
    """An activation finished successfully."""

    node_id: UUID = _NO_NODE
    result: str = ""
    output_data: dict[str, Any] = field(default_factory=dict)
    node_name: str = ""
    visit: int = 1

    @classmethod
    def _engine(
        cls, flow_id: UUID, node_id: UUID, result: str, data: dict[str, Any], name: str, visit: int
    ) -> NodeFinished:
        """The runner's fast constructor (no keyword binding; once per activation)."""
        event = _fresh(cls, flow_id)
        event.node_id = node_id
        event.result = result
        event.output_data = data
        event.node_name = name
        event.visit = visit
        return event


@dataclass(slots=True)
class NodeRetrying(FlowEvent):
    """An attempt failed; the node runs again after ``delay`` seconds."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    attempt: int = 1
    next_attempt: int = 2
    delay: float = 0.0
    error: str = ""


@dataclass(slots=True)
class NodeSkipped(FlowEvent):
    """A failed node with the SKIP strategy was skipped; its input passes through."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    error: str = ""


@dataclass(slots=True)
class NodeDead(FlowEvent):
    """A node will not run this time: every path that could reach it was not taken
    (a decision chose another branch, a failed node delivered nothing)."""

    node_id: UUID = _NO_NODE
    node_name: str = ""


@dataclass(slots=True)
class FlowError(FlowEvent):
    """A node failed for good (once per final failure). ``recoverable`` is True
    when the flow goes on (SKIP, CONTINUE)."""

    node_id: UUID = _NO_NODE
    error: str = ""
    recoverable: bool = False
    node_name: str = ""


@dataclass(slots=True)
class UserInputRequired(FlowEvent):
    """A node waits for a person's answer."""

    node_id: UUID = _NO_NODE
    prompt: str = ""
    options: list[str] = field(default_factory=list)
    node_name: str = ""
    #: When the wait's deadline passes (a Unix time), None without one.
    deadline: float | None = None


@dataclass(slots=True)
class TimerSet(FlowEvent):
    """A node (a Sleep1) parked until ``wake_at`` (a Unix time; ``wake_iso`` is the
    same instant in ISO 8601, UTC); logged by the commit that recorded it."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    wake_at: float = 0.0
    wake_iso: str = ""


@dataclass(slots=True)
class TimerFired(FlowEvent):
    """A parked node's timer was due and the node ran on (``late``: seconds after
    ``wake_at``, by the engine's clock)."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    wake_at: float = 0.0
    late: float = 0.0


@dataclass(slots=True)
class ChildFlowWaited(FlowEvent):
    """A node's activation parked, waiting for its child flow ``child_flow_id``
    that a fleet's workers advance; logged by the commit that parked it (again
    after each wake that found the child still running or answered it). A client
    following the flow follows the child's log from here (docs/scale-out.md)."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    visit: int = 0
    attempt: int = 1
    child_flow_id: UUID = _NO_NODE


@dataclass(slots=True)
class MapProgress(FlowEvent):
    """A Map1 node's items: ``total`` items, ``done`` ended (``failed`` of them
    failed), ``running`` queued or running now; logged when the map starts and by
    each item's commit (docs/map.md)."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    visit: int = 0
    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0


@dataclass(slots=True)
class DeadlinePassed(FlowEvent):
    """A node's wait for a person passed its ``deadline`` unanswered: it is answered
    with ``answer`` (its ``on_timeout``), or, when ``edge`` is set (its
    ``on_timeout_edge``), it takes that edge; logged by the commit that does it."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    deadline: float = 0.0
    answer: str = ""
    edge: str = ""


@dataclass(slots=True)
class ScheduleFired(FlowEvent):
    """The flow was started by the schedule ``schedule`` for its tick ``tick`` (a Unix
    time; ``tick_iso`` in ISO 8601, UTC); ``missed``: earlier ticks that passed
    while no clock ran and that this flow stands for (policy ``run-once``)."""

    schedule: str = ""
    tick: float = 0.0
    tick_iso: str = ""
    missed: int = 0
    #: Started by hand (``qm schedules run``), not by a clock: ``tick`` is when.
    manual: bool = False


@dataclass(slots=True)
class FlowPaused(FlowEvent):
    """Nothing can run until someone answers or a timer is due (``wakes_at``, the
    first one's time): the flow is paused and no process holds it."""

    waiting: list[UUID] = field(default_factory=list)
    wakes_at: float | None = None


@dataclass(slots=True)
class FlowStopped(FlowEvent):
    """The flow was stopped by `FlowRunner.stop`."""

    reason: str = ""


@dataclass(slots=True)
class FlowEdited(FlowEvent):
    """Someone changed a paused flow's state (`Engine.update`): ``memory`` holds the
    values set; ``messages`` (when not None) replaces the message history of the
    waiting node ``node_id``. ``after_record``: how many records the flow had then,
    which places the edit in the flow's history."""

    memory: dict[str, Any] = field(default_factory=dict)
    node_id: UUID | None = None
    messages: list[dict[str, Any]] | None = None
    after_record: int = 0


@dataclass(slots=True)
class FlowForked(FlowEvent):
    """The first event of a fork: the flow began as ``from_flow`` stood at its
    checkpoint ``at`` (0: before anything ran), with edits applied after it.
    ``reuse``: ``"unchanged"`` when nodes whose inputs did not change reuse
    ``from_flow``'s results (see `NodeReused`), else None."""

    from_flow: UUID | None = None
    at: int = 0
    reuse: str | None = None


@dataclass(slots=True)
class FlowMigrated(FlowEvent):
    """The flow was moved to another version of its graph (`Engine.migrate`):
    ``from_graph`` / ``to_graph`` are the SHA-256 of the graphs' JSON (the one it
    ran and the one it now runs, its node ids aligned to the old graph's),
    ``graph_name`` the new graph's name, ``mapping`` the name of each old node
    that has a node in the new graph -> that node's name, ``dropped`` the id ->
    name of each old node that has none (its records stay in the flow)."""

    from_graph: str = ""
    to_graph: str = ""
    graph_name: str = ""
    mapping: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class NodeReused(FlowEvent):
    """A fork's activation was given the recorded result of the same (node, visit)
    of ``from_flow`` instead of running its executor: its inputs were the same.
    Its `NodeFinished` follows, in the same commit."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    visit: int = 1
    from_flow: UUID | None = None


@dataclass(slots=True)
class FlowFinished(FlowEvent):
    """The flow ended, completed or failed (``status``, ``success``). ``usage``: its
    node runs, tokens and cost (`budgets.Usage.to_dict`) when the engine has budgets,
    the flow's or a key's (which count it), else None. ``key_usage``: each budgeted
    key of the flow's nodes with its totals across flows as the flow ended and its
    budget (`KeyBudgets.graph_usage`), when the engine has key budgets, else None."""

    final_output: str = ""
    output_data: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"
    success: bool = True
    error: str | None = None
    usage: dict[str, Any] | None = None
    key_usage: dict[str, dict[str, Any]] | None = None


@dataclass(slots=True)
class ProgressEvent(FlowEvent):
    """A node (or a tool it calls) reports progress: `ExecutionContext.emit_progress`.
    ``percent`` is a fraction from 0 to 1, or None; ``data`` is JSON-ready detail."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    message: str = ""
    percent: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str | None:
        share = f" {self.percent:.0%}" if self.percent is not None else ""
        return f"{self.node_name}:{share} {self.message}"


@dataclass(slots=True)
class CustomEvent(FlowEvent):
    """An application event named ``name`` with a JSON-ready ``payload``, from
    `ExecutionContext.emit_custom`."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    name: str = ""
    payload: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str | None:
        return f"{self.node_name}: {self.name}"


@dataclass(slots=True)
class ToolCallStarted(FlowEvent):
    """A node calls a tool (``call`` is the model's id of the call; ``iteration`` the
    round of an agent loop). The LLM pack's Agent1 emits it; any executor may."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    tool: str = ""
    call: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    iteration: int = 1


@dataclass(slots=True)
class ToolCallFinished(FlowEvent):
    """A tool call returned (``result``) or failed (``error``)."""

    node_id: UUID = _NO_NODE
    node_name: str = ""
    tool: str = ""
    call: str = ""
    result: str = ""
    error: str | None = None
    duration_seconds: float = 0.0


__all__ = [
    "ChildFlowWaited",
    "CustomEvent",
    "DeadlinePassed",
    "FlowEdited",
    "FlowError",
    "FlowEvent",
    "FlowFinished",
    "FlowForked",
    "FlowMigrated",
    "FlowPaused",
    "FlowResumed",
    "FlowStarted",
    "FlowStopped",
    "MapProgress",
    "NodeDead",
    "NodeFinished",
    "NodeRetrying",
    "NodeReused",
    "NodeSkipped",
    "NodeStarted",
    "ProgressEvent",
    "ScheduleFired",
    "TimerFired",
    "TimerSet",
    "TokenGenerated",
    "ToolCallFinished",
    "ToolCallStarted",
    "UserInputRequired",
    "event_from_dict",
]

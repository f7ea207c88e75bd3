"""What API requests carry: the bodies of the routes that take one, with their
limits (how deep posted JSON may nest, how far a page may start), and flow ids
read from paths."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qm_server.errors import ApiError
from quartermaster_engine.history import ForkEdits


class StartFlow(BaseModel):
    """Start a flow of a graph of the graphs folder (``graph``), or of a graph posted
    inline (``graph_spec``, when the server allows it)."""

    model_config = ConfigDict(extra="forbid")

    graph: str | None = Field(default=None, description="a graph name (its file name)")
    graph_spec: dict[str, Any] | None = Field(
        default=None, description="a graph in the full or hand-written form (if enabled)"
    )
    input: str = Field(default="", description="the flow input")
    wait: bool = Field(default=False, description="answer with the result (end or pause)")

    @model_validator(mode="after")
    def _one_graph(self) -> StartFlow:
        if (self.graph is None) == (self.graph_spec is None):
            raise ValueError("give exactly one of graph and graph_spec")
        if self.graph_spec is not None and _depth(self.graph_spec) > MAX_GRAPH_DEPTH:
            raise ValueError(f"graph_spec nests deeper than {MAX_GRAPH_DEPTH} levels")
        return self


#: How deep an inline graph's JSON may nest (a graph needs a handful of levels;
#: hundreds exhaust the serializers' recursion limits).
MAX_GRAPH_DEPTH = 32
#: The largest page offset of ``GET /api/flows``.
MAX_OFFSET = 1_000_000


def _depth(value: Any) -> int:
    """How deeply ``value`` (parsed JSON) nests, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_GRAPH_DEPTH:
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, level + 1) for child in children)
    return deepest


class ResumeFlow(BaseModel):
    """Answer a waiting node of a paused flow and continue it."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(description="the person's answer")
    node: str | None = Field(
        default=None, description="the waiting node (id or name); default: the first waiting"
    )
    wait: bool = Field(default=False, description="answer with the result (end or pause)")


class EditMessage(BaseModel):
    """One message of an edit's ``messages``."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(description="system, user or assistant")
    content: str


class EditFlow(BaseModel):
    """Set flow-memory values of a paused, failed or stopped flow, and/or replace the
    input messages of the node that runs next (the waiting or failed one)."""

    model_config = ConfigDict(extra="forbid")

    memory: dict[str, Any] | None = Field(default=None, description="flow-memory values to set")
    messages: list[EditMessage] | None = Field(
        default=None, min_length=1, description="the input messages of the node that runs next"
    )
    node: str | None = Field(
        default=None, description="the node ``messages`` are for (id or name), when several wait"
    )

    @model_validator(mode="after")
    def _something(self) -> EditFlow:
        if self.memory is None and self.messages is None:
            raise ValueError("nothing to edit: give memory and/or messages")
        if self.memory is not None and _depth(self.memory) > MAX_GRAPH_DEPTH:
            raise ValueError(f"memory nests deeper than {MAX_GRAPH_DEPTH} levels")
        return self


class RetryFlow(BaseModel):
    """Continue a failed flow from the activation that failed it."""

    model_config = ConfigDict(extra="forbid")

    wait: bool = Field(default=False, description="answer with the result (end or pause)")


class ForkFlow(BaseModel):
    """Start a new flow from a checkpoint of this one, with edits, and run it."""

    model_config = ConfigDict(extra="forbid")

    at: int | None = Field(
        default=None, ge=0, description="the checkpoint (see the history); default: the last"
    )
    memory: dict[str, Any] | None = Field(default=None, description="flow-memory values to set")
    input: str | None = Field(default=None, description="a new flow input")
    answer: str | None = Field(default=None, description="answers the node waiting there")
    reuse: Literal["unchanged"] | None = Field(
        default=None, description="reuse the results of nodes whose inputs did not change"
    )
    wait: bool = Field(default=False, description="answer with the result (end or pause)")

    @model_validator(mode="after")
    def _shallow(self) -> ForkFlow:
        if self.memory is not None and _depth(self.memory) > MAX_GRAPH_DEPTH:
            raise ValueError(f"memory nests deeper than {MAX_GRAPH_DEPTH} levels")
        return self

    def edits(self) -> ForkEdits:
        return ForkEdits(
            at=self.at, memory=self.memory, input=self.input, answer=self.answer, reuse=self.reuse
        )


def parse_flow_id(text: str) -> UUID:
    """The flow id of a path; ``400 invalid_flow_id`` if ``text`` is not one."""
    try:
        return UUID(text)
    except ValueError:
        raise ApiError(400, "invalid_flow_id", f"{text!r} is not a flow id") from None

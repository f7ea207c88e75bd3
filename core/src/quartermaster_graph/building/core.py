"""The wiring every chain of the builder shares: where the next node goes and how
it is connected (`ChainCore`); the node methods build on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Self
from uuid import UUID

from quartermaster_graph.building.making import make_node
from quartermaster_graph.enums import NodeType, TraverseOut
from quartermaster_graph.models import GraphNode

if TYPE_CHECKING:
    from quartermaster_graph.builder import GraphBuilder

ForkKind = Literal["pick", "parallel", "timeout"]


class ChainCore:
    """Where the next node goes, shared by a graph and its branches.

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
        self._fork_kind: ForkKind | None = None

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
        return self._attach(make_node(node_type, name, metadata, kwargs, llm=llm))

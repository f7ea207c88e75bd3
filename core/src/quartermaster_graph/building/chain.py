"""A chain of the builder with every node method (`Chain`), and its branches
(`BranchBuilder`): ``on(label)`` after a node that picks, ``branch()`` after
``parallel()``; a branch's ``end()`` returns to its parent."""

from __future__ import annotations

from typing import Generic, NoReturn, Self, TypeVar
from uuid import UUID

from quartermaster_graph.building.control import ControlNodes
from quartermaster_graph.building.data import DataNodes
from quartermaster_graph.building.graphs import GraphParts
from quartermaster_graph.building.llm import LlmNodes
from quartermaster_graph.building.waits import WaitNodes
from quartermaster_graph.enums import TraverseOut
from quartermaster_graph.models import GraphNode

P = TypeVar("P", bound="Chain")


class Chain(LlmNodes, ControlNodes, WaitNodes, DataNodes, GraphParts):
    """Where the next node goes: every node method, shared by a graph and its
    branches (see `ChainCore` for the wiring)."""

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


class BranchBuilder(Chain, Generic[P]):
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

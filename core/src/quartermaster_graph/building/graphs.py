"""The builder's methods that bring in other graphs or nodes: sub-graphs, Map1,
any node type, inlined graphs, edges by name or id."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Self
from uuid import UUID

from quartermaster_graph.building.core import ChainCore
from quartermaster_graph.building.making import make_node
from quartermaster_graph.enums import MAP_ITEM_ERRORS, NodeType
from quartermaster_graph.models import GraphNode, GraphSpec

if TYPE_CHECKING:
    from quartermaster_graph.builder import GraphBuilder


class GraphParts(ChainCore):
    """Sub-graphs and Map1, nodes of any type, inlined graphs and explicit edges."""

    def sub_graph(self, name: str, graph: str | os.PathLike[str], **kwargs: Any) -> Self:
        """A SubAssistant1 node that runs another graph, named by file path or
        registered name (metadata ``graph``); see `use` to inline one instead."""
        return self._add(NodeType.SUB_ASSISTANT, name, {"graph": os.fspath(graph)}, kwargs)

    def sub_agent(self, name: str, graph_id: str = "", **kwargs: Any) -> Self:
        """0.1.5's `sub_graph`: writes ``graph`` and 0.1.5's ``sub_assistant_id``."""
        meta = {"graph": graph_id, "sub_assistant_id": graph_id}
        return self._add(NodeType.SUB_ASSISTANT, name, meta, kwargs)

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
            item = make_node(NodeType.SUB_ASSISTANT, f"{name} item", meta_item, {})
        elif isinstance(node, GraphNode):
            item = node
        else:
            assert node is not None
            item = make_node(node, f"{name} item", {}, {})
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
        node = make_node(node_type, name, dict(metadata or {}), fields, fields=own)
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

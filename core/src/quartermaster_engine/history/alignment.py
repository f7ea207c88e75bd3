"""A new version of a flow's graph, its node and edge ids aligned to the old graph's.

A migrated flow keeps its records, queue, join deliveries and loop marks, all of
which name nodes and edges by id. So the graph it moves to is the new graph with
each node that replaces an old one (same name, or ``mapping`` OLD=NEW) carrying
the old node's id, and each edge between two such nodes with the same label
carrying the old edge's id. Nodes and edges that replace none keep their ids
unless an old one has it (then they get one derived from it). For graph files,
whose ids are derived from names, the aligned graph is the new file's graph as
loaded unless ``mapping`` renames nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid5

from quartermaster_engine.runner.errors import FlowStateError
from quartermaster_engine.types import GraphSpec

#: Namespace of the ids given to new nodes and edges whose id an old one has.
MOVED = UUID("6b1f0c52-9f3e-4c59-8a51-3d7c2a41e9d0")


class MigrationRefused(FlowStateError):
    """A flow cannot move to the new graph; the message names the node and why."""


@dataclass(frozen=True, slots=True)
class Alignment:
    """``graph``: the new graph with aligned ids; ``names``: each old node name that
    has a node in it -> that node's name; ``kept``: the ids of those old nodes."""

    graph: GraphSpec
    names: dict[str, str]
    kept: frozenset[UUID]


def mapping_arg(mapping: Mapping[str, str] | None, to: GraphSpec) -> dict[str, str]:
    """``mapping`` checked: old node name -> a node name of ``to``."""
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise ValueError(
            f"mapping must be a dict of old node name -> new node name, got {mapping!r}"
        )
    names = {node.name for node in to.nodes}
    for old, new in mapping.items():
        if not isinstance(old, str) or not isinstance(new, str) or not old or not new:
            raise ValueError(f"mapping must map node names to node names, got {old!r}: {new!r}")
        if new not in names:
            raise ValueError(
                f"mapping {old}={new}: the new graph {to.name!r} has no node named {new!r}"
            )
    return dict(mapping)


def align(old: GraphSpec, new: GraphSpec, mapping: Mapping[str, str], flow_id: UUID) -> Alignment:
    """``new`` aligned to ``old`` (see the module); `MigrationRefused` when ``mapping``
    names a node ``old`` lacks, or two old nodes would become one."""
    old_names = {node.name for node in old.nodes}
    for name in mapping:
        if name not in old_names:
            raise MigrationRefused(
                f"mapping {name}={mapping[name]}: flow {flow_id}'s graph {old.name!r} "
                f"has no node named {name!r}"
            )
    new_by_name: dict[str, Any] = {}
    for node in new.nodes:
        new_by_name.setdefault(node.name, node)
    ids: dict[UUID, UUID] = {}
    replaced: dict[UUID, str] = {}
    names: dict[str, str] = {}
    for node in old.nodes:
        target = mapping.get(node.name, node.name)
        twin = new_by_name.get(target)
        if twin is None:
            continue
        if twin.id in ids:
            raise MigrationRefused(
                f"nodes {replaced[twin.id]!r} and {node.name!r} of flow {flow_id} would both "
                f"become node {target!r} of the new graph"
            )
        ids[twin.id] = node.id
        replaced[twin.id] = node.name
        names[node.name] = twin.name
    old_ids = {node.id for node in old.nodes}
    for node in new.nodes:
        if node.id not in ids:
            ids[node.id] = _fresh(node.id, old_ids)
    old_edges = {(e.source_id, e.target_id, e.label): e.id for e in old.edges}
    old_edge_ids = set(old_edges.values())
    data = new.model_dump()
    for node in data["nodes"]:
        node["id"] = ids[node["id"]]
    for edge in data["edges"]:
        edge["source_id"] = ids[edge["source_id"]]
        edge["target_id"] = ids[edge["target_id"]]
        same = old_edges.get((edge["source_id"], edge["target_id"], edge["label"]))
        edge["id"] = same if same is not None else _fresh(edge["id"], old_edge_ids)
    data["start_node_id"] = ids[data["start_node_id"]]
    kept = frozenset(ids[twin] for twin in replaced)
    return Alignment(GraphSpec.model_validate(data), names, kept)


def _fresh(given: UUID, taken: set[UUID]) -> UUID:
    """``given``, or an id derived from it when an old node or edge has it."""
    return given if given not in taken else uuid5(MOVED, str(given))


__all__ = ["Alignment", "MigrationRefused", "align", "mapping_arg"]

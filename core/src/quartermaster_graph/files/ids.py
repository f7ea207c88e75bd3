"""Ids derived from names, for hand-written graph files that leave ids out."""

from __future__ import annotations

from uuid import UUID, uuid5

#: The namespace of ids derived from names; fixed forever, or derived ids would change.
ID_NAMESPACE = UUID("6f1f9a52-3c1e-5b8e-9d47-0a2c8e4b7d31")


def node_id_from_name(name: str) -> UUID:
    """The id a hand-written node named ``name`` gets when it has no ``id``."""
    return uuid5(ID_NAMESPACE, f"node:{name}")


def edge_id(source: UUID, target: UUID, label: str) -> UUID:
    """The id of an edge without ``id``: one per (source, target, label)."""
    return uuid5(ID_NAMESPACE, f"edge:{source}:{target}:{label}")


def graph_ids(name: str) -> tuple[UUID, UUID]:
    """The graph id and agent id of a graph named ``name`` that gives neither."""
    return uuid5(ID_NAMESPACE, f"graph:{name}"), uuid5(ID_NAMESPACE, f"agent:{name}")

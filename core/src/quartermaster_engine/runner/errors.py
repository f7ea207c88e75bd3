"""Errors of node runs whose message is complete as it is."""

from __future__ import annotations


class NodeError(Exception):
    """A node failure whose message is complete as it is (no exception type prefix)."""

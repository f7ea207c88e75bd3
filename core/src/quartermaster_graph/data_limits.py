"""Limits on the shape of data read from files (graph files, sub-graph files, configs).

A file is read in time and memory proportional to its size:

- nesting deeper than `MAX_NESTING` levels of lists and mappings is refused
  (graph files need about ten; Python's parsers would otherwise end in
  `RecursionError` around a thousand);
- in YAML, aliases (``*name``) may add at most `MAX_ALIAS_NODES` nodes beyond
  those written in the file, counted as if every alias were expanded (the
  "billion laughs" file of 523 bytes expands to billions); an alias inside the
  node it refers to (``&a [*a]``) is refused.

Every check walks each distinct node once, without recursion.
"""

from __future__ import annotations

from typing import Any

import yaml

#: The deepest nesting of lists and mappings a file may have.
MAX_NESTING = 100
#: How many YAML nodes aliases may add, in total, when expanded.
MAX_ALIAS_NODES = 10_000


def too_deep_message(limit: int = MAX_NESTING) -> str:
    return f"nested deeper than {limit} levels of lists and mappings (the limit is {limit})"


def data_too_deep(data: Any, limit: int = MAX_NESTING) -> bool:
    """Whether parsed data (dicts and lists, as JSON and TOML give) nests deeper than
    ``limit`` levels."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def invalid_text(text: str) -> str | None:
    """Why ``text`` is not valid Unicode (a lone surrogate, which JSON escapes such as
    ``"\\udcff"`` can make), or None when it is."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = text[exc.start]
        hint = ""
        if "\udc80" <= char <= "\udcff":  # how Python keeps bytes that were not UTF-8
            hint = f" (the byte 0x{ord(char) - 0xDC00:02X}, which is not UTF-8)"
        return f"holds a lone surrogate {char!r} at position {exc.start}{hint}"
    return None


def first_invalid_text(data: Any) -> tuple[tuple[str | int, ...], str] | None:
    """The path of the first string (or key) of parsed data that is not valid
    Unicode, and why; None when every one is."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, str):
            problem = invalid_text(value)
            if problem is not None:
                return loc, problem
        elif isinstance(value, dict):
            for key, child in value.items():
                if isinstance(key, str) and invalid_text(key) is not None:
                    return (*loc, key), f"the key {invalid_text(key)}"
                stack.append((child, (*loc, key)))
        elif isinstance(value, list):
            stack.extend((child, (*loc, i)) for i, child in enumerate(value))
    return None


def yaml_children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly under a composed YAML node (keys and values of a mapping)."""
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def yaml_tree_problem(root: yaml.Node) -> tuple[int, str] | None:
    """The first limit a composed YAML document breaks, as (line, message); None if
    it keeps them all. Measures each distinct node once (aliases share nodes)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()  # nodes whose subtree is being measured: the path
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            kids = yaml_children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if depth[key] > MAX_NESTING:
                return node.start_mark.line + 1, too_deep_message()
            continue
        if key in size:
            continue  # an alias of a node measured already
        if key in open_nodes:
            return (
                node.start_mark.line + 1,
                "an alias refers to a node that contains it (a recursive structure)",
            )
        open_nodes.add(key)
        distinct += 1
        stack.append((node, True))
        for kid in yaml_children(node):
            if id(kid) in open_nodes:
                return (
                    kid.start_mark.line + 1,
                    "an alias refers to a node that contains it (a recursive structure)",
                )
            if id(kid) not in size:
                stack.append((kid, False))
    added = size[id(root)] - distinct
    if added > MAX_ALIAS_NODES:
        return (
            1,
            f"aliases would expand to {added:,} nodes more than the file holds; "
            f"the limit is {MAX_ALIAS_NODES:,}",
        )
    return None

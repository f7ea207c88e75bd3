"""Sandboxed expressions, evaluated with simpleeval (never ``eval``).

An expression is one Python expression over a few names: ``input`` (the node's
input text), ``memory`` (flow memory, a dict), ``outputs`` (predecessor outputs
by node name), ``visit`` (which run of the node this is) and, for some node
types, more (``current`` for memory writes). It may call the functions in
`SAFE_FUNCTIONS` and the non-mutating methods of strings, numbers, lists and
dicts (``input.lower()``, ``memory.get("n", 0)``); ``memory.key`` reads a key.

Expressions are parsed and checked once (`compile_expression`, cached by source):
syntax errors, statements, unsupported constructs and unknown names are found
before a flow starts, by the executors' ``validate_node``.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import simpleeval  # type: ignore[import-untyped]

from qm_nodes_std.limits import GROWING, bounded_method, safe_mod

#: Functions every expression may call.
SAFE_FUNCTIONS: dict[str, Any] = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "sum": sum,
    "sorted": sorted,
    "any": any,
    "all": all,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "set": set,
}

#: The names every expression sees; node types may add their own.
BASE_NAMES: frozenset[str] = frozenset({"input", "memory", "outputs", "visit"})

_CONSTANTS = {"True": True, "False": False, "None": None}

# Methods an expression may call, by type: simpleeval's list without the ones
# that mutate (the memory snapshot is shared by every node until the next write).
_BASIC = simpleeval.BASIC_ALLOWED_ATTRS
_SAFE_ATTRS: dict[type, frozenset[str]] = {
    # Methods that grow a string are handed out bounded (see `limits`); format
    # specifications are not read here, so format and format_map stay refused.
    str: frozenset(_BASIC[str]) - {"format", "format_map", "maketrans"} - GROWING,
    int: frozenset(_BASIC[int]),
    float: frozenset(_BASIC[float]),
    bool: frozenset(_BASIC[bool]),
    dict: frozenset({"get", "items", "keys", "values", "copy"}),
    list: frozenset({"index", "count", "copy"}),
    tuple: frozenset({"index", "count"}),
    set: frozenset(
        {
            "union",
            "intersection",
            "difference",
            "symmetric_difference",
            "issubset",
            "issuperset",
            "isdisjoint",
            "copy",
        }
    ),
}

# Friendlier names of constructs simpleeval does not evaluate.
_CONSTRUCTS = {
    "Lambda": "lambda",
    "NamedExpr": "the := operator",
    "SetComp": "set comprehensions",
    "Await": "await",
    "Yield": "yield",
    "YieldFrom": "yield",
    "Starred": "* unpacking outside a list",
    "MatMult": "the @ operator",
}


class ExpressionError(ValueError):
    """An expression that cannot run: its syntax, a construct or a name (found before a run)."""


class ExpressionFailed(RuntimeError):
    """An expression raised while it was evaluated; the message names the expression."""


class _SafeEval(simpleeval.EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval with per-type method allow-lists and ``mapping.key`` reading a key."""

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        attr = node.attr
        if attr.startswith("_") or attr in simpleeval.DISALLOW_METHODS:
            raise simpleeval.FeatureNotAvailable(f"attribute {attr!r} is not allowed")
        value = self._eval(node.value)
        if type(value) is str and attr in GROWING:
            return bounded_method(value, attr)
        allowed = _SAFE_ATTRS.get(type(value))
        if allowed is not None and attr in allowed:
            return getattr(value, attr)
        if isinstance(value, Mapping) and attr in value:
            return value[attr]
        if hasattr(value, attr):
            # A method that changes its object, or one simpleeval does not vouch for.
            raise simpleeval.FeatureNotAvailable(
                f"{type(value).__name__}.{attr} is not allowed in expressions"
            )
        if isinstance(value, Mapping):
            raise KeyError(attr)
        raise simpleeval.FeatureNotAvailable(f"{type(value).__name__} has no attribute {attr!r}")


_local = threading.local()
#: simpleeval's operators, with ``%`` formatting bounded like the rest (see `limits`).
_OPERATORS = {**simpleeval.DEFAULT_OPERATORS, ast.Mod: safe_mod}


def _evaluator() -> _SafeEval:
    # simpleeval keeps per-evaluation state on the instance, so each thread has its own;
    # an evaluation never awaits, so one per thread is never used twice at once.
    evaluator: _SafeEval | None = getattr(_local, "evaluator", None)
    if evaluator is None:
        evaluator = _local.evaluator = _SafeEval(
            operators=_OPERATORS, functions=dict(SAFE_FUNCTIONS), names={}
        )
    return evaluator


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed, checked expression. ``names`` are the variables it reads."""

    source: str
    tree: ast.Expr
    names: frozenset[str]

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The expression's value; `ExpressionFailed` names the expression and the error."""
        evaluator = _evaluator()
        evaluator.names = {**_CONSTANTS, **variables}
        try:
            return evaluator.eval(self.source, previously_parsed=self.tree)
        except Exception as exc:
            raise ExpressionFailed(f"expression {self.source!r} failed: {_describe(exc)}") from None
        finally:
            evaluator.names = {}


def _describe(exc: Exception) -> str:
    if isinstance(exc, simpleeval.NameNotDefined):
        return f"name {exc.name!r} is not defined"
    if isinstance(exc, simpleeval.InvalidExpression):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _supported() -> frozenset[type]:
    probe = _SafeEval(functions=dict(SAFE_FUNCTIONS), names={})
    expressions = {t for t in probe.nodes if issubclass(t, ast.expr)}
    # Boolean operators and comprehension clauses are evaluated by their parent node.
    return frozenset(expressions | set(probe.operators) | {ast.And, ast.Or})


_SUPPORTED = _supported()
_CHECKED_KINDS = (ast.expr, ast.operator, ast.cmpop, ast.unaryop, ast.boolop)


def describe_names(names: frozenset[str]) -> str:
    """For error messages: the names and functions an expression may use."""
    return (
        f"names {', '.join(sorted(names))}; functions {', '.join(SAFE_FUNCTIONS)}; "
        "True, False, None"
    )


@lru_cache(maxsize=4096)
def compile_expression(source: str, names: frozenset[str] = BASE_NAMES) -> Expression:
    """Parse and check ``source``; `ExpressionError` says what is wrong.

    ``names`` are the variables the expression may read. Cached by source, so a
    node's expression is parsed once, however often the node runs.
    """
    if not isinstance(source, str):
        raise ExpressionError(f"expression must be a string, got {type(source).__name__}")
    text = source.strip()
    if not text:
        raise ExpressionError("expression is empty")
    try:
        module = ast.parse(text, mode="exec")
    except SyntaxError as exc:
        where = f" (column {exc.offset})" if exc.offset else ""
        raise ExpressionError(f"invalid syntax in {source!r}: {exc.msg}{where}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ExpressionError(f"cannot parse {source!r}: {type(exc).__name__}") from None
    if len(module.body) != 1 or not isinstance(module.body[0], ast.Expr):
        raise ExpressionError(f"{source!r} must be a single expression, not a statement")
    tree = module.body[0]
    local: set[str] = set()
    loaded: list[str] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, _CHECKED_KINDS)
            and type(node) not in _SUPPORTED
            and not (isinstance(node, ast.Starred) and _in_list(tree, node))
        ):
            kind = type(node).__name__
            what = _CONSTRUCTS.get(kind, kind)
            raise ExpressionError(f"{source!r} uses {what}, which expressions do not support")
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            raise ExpressionError(
                f"{source!r} uses an f-string format specification, which expressions "
                "do not support"
            )
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"{source!r} reads attribute {node.attr!r}, which is not allowed")
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                local.add(node.id)  # a comprehension variable
            else:
                loaded.append(node.id)
    allowed = names | SAFE_FUNCTIONS.keys() | _CONSTANTS.keys() | local
    for name in loaded:
        if name not in allowed:
            raise ExpressionError(
                f"{source!r} uses unknown name {name!r}; expressions can use "
                + describe_names(names)
            )
    return Expression(text, tree, frozenset(n for n in loaded if n in names))


def _in_list(tree: ast.AST, starred: ast.AST) -> bool:
    return any(isinstance(parent, ast.List) and starred in parent.elts for parent in ast.walk(tree))

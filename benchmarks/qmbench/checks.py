"""Correctness checks shared by every engine (stdlib only).

Each no-op executor's only side effect is appending its node's name to a list
(``list.append`` is atomic in CPython, so threads may share it). After a run
the list says which nodes ran, how often and in what order, the same way for
every engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


class WrongResult(Exception):
    """A run finished but did the wrong thing (a node ran twice, a bad output...)."""


class EngineFailed(Exception):
    """The engine reported that the run failed (a failed flow, an error result)."""


def chain_names(n: int) -> list[str]:
    """The no-op nodes of an ``n``-node chain, in order."""
    return [f"n{i}" for i in range(n)]


def branch_names(n: int) -> list[str]:
    """The no-op branches of an ``n``-branch fan-out."""
    return [f"b{i}" for i in range(n)]


JOIN = "join"


def _describe_counts(calls: Sequence[str], expected: Sequence[str]) -> str:
    got = Counter(calls)
    want = Counter(expected)
    missing = [n for n in want if got[n] < want[n]]
    extra = [n for n in got if got[n] > want[n]]
    parts = [f"{len(calls)} node runs, expected {len(expected)}"]
    if missing:
        parts.append(f"{len(missing)} node(s) ran too rarely (e.g. {', '.join(missing[:3])})")
    if extra:
        sample = ", ".join(f"{n} x{got[n]}" for n in extra[:3])
        parts.append(f"{len(extra)} node(s) ran too often (e.g. {sample})")
    return "; ".join(parts)


def check_chain(calls: Sequence[str], n: int, flows: int = 1) -> None:
    """Every node of the chain ran once per flow, in chain order."""
    expected = chain_names(n) * flows
    if list(calls) != expected:
        if Counter(calls) == Counter(expected):
            raise WrongResult("every node ran once, but not in chain order")
        raise WrongResult(_describe_counts(calls, expected))


def check_fanout(calls: Sequence[str], n: int) -> None:
    """Every branch ran once, and the join ran once, after all of them."""
    expected = [*branch_names(n), JOIN]
    if Counter(calls) != Counter(expected):
        joins = sum(1 for c in calls if c == JOIN)
        detail = _describe_counts(calls, expected)
        raise WrongResult(f"the join ran {joins} times; {detail}")
    if calls[-1] != JOIN:
        raise WrongResult(
            f"the join ran before {len(calls) - 1 - list(calls).index(JOIN)} branch(es) finished"
        )


def check_equal(what: str, got: object, expected: object) -> None:
    """``got == expected``, or a `WrongResult` naming ``what``."""
    if got != expected:
        raise WrongResult(f"{what} was {_short(got)}, expected {_short(expected)}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."

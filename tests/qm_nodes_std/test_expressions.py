"""Expressions: checked before a run, evaluated by simpleeval, never able to mutate memory."""

from __future__ import annotations

import pytest

from qm_nodes_std import ExpressionError, ExpressionFailed, compile_expression
from qm_nodes_std.expressions import BASE_NAMES

NAMES = {"input": "Invoice #42 is WRONG", "memory": {"n": 2, "tags": ["a", "b"]}, "visit": 3}


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ('"invoice" in input.lower()', True),
        ("input.split()[1]", "#42"),
        ('memory["n"] * 10 + visit', 23),
        ("memory.n", 2),
        ('memory.get("missing", "none")', "none"),
        ("len(memory.tags) == 2 and sorted(memory.tags, reverse=True)[0]", "b"),
        ("[t.upper() for t in memory.tags if t != 'a']", ["B"]),
        ("{'k': [1, 2][-1]}", {"k": 2}),
        ("max(1, int('7'), round(2.6))", 7),
        ("any(c.isdigit() for c in input)", True),
        ("f'{visit}:{memory.n}'", "3:2"),
        ("None if visit > 2 else 1", None),
    ],
)
def test_expressions_evaluate_over_the_documented_names(source: str, value: object) -> None:
    expression = compile_expression(source)
    assert expression.evaluate(NAMES) == value


def test_an_expression_records_the_names_it_reads() -> None:
    assert compile_expression("len(input) > visit").names == {"input", "visit"}
    assert compile_expression("[x for x in memory]").names == {"memory"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "expression is empty"),
        ("input ==", "invalid syntax in 'input ==': invalid syntax (column 9)"),
        ("x = 1", "'x = 1' must be a single expression, not a statement"),
        ("input; memory", "'input; memory' must be a single expression, not a statement"),
        (
            "inptu.lower()",
            "'inptu.lower()' uses unknown name 'inptu'; expressions can use names input, "
            "memory, outputs, visit; functions len, str, int, float, bool, abs, min, max, "
            "round, sum, sorted, any, all, list, dict, tuple, set; True, False, None",
        ),
        ("(lambda: 1)()", "'(lambda: 1)()' uses lambda, which expressions do not support"),
        ("(n := 1)", "'(n := 1)' uses the := operator, which expressions do not support"),
        (
            "{x for x in input}",
            "'{x for x in input}' uses set comprehensions, which expressions do not support",
        ),
        (
            "f'{input:>1000000000}'",
            "\"f'{input:>1000000000}'\" uses an f-string format specification, which "
            "expressions do not support",
        ),
        ("input.__class__", "'input.__class__' reads attribute '__class__', which is not allowed"),
        (
            "open('/etc/passwd')",
            "\"open('/etc/passwd')\" uses unknown name 'open'; expressions can use "
            "names input, memory, outputs, visit; functions len, str, int, float, bool, abs, min, "
            "max, round, sum, sorted, any, all, list, dict, tuple, set; True, False, None",
        ),
        (
            "memory @ memory",
            "'memory @ memory' uses the @ operator, which expressions do not support",
        ),
    ],
)
def test_bad_expressions_are_refused_when_compiled(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('memory["ticket"]', "expression 'memory[\"ticket\"]' failed: KeyError: 'ticket'"),
        ("memory.ticket", "expression 'memory.ticket' failed: KeyError: 'ticket'"),
        (
            "1 / (visit - 3)",
            "expression '1 / (visit - 3)' failed: ZeroDivisionError: division by zero",
        ),
        (
            "memory.tags.append('c')",
            "expression \"memory.tags.append('c')\" failed: "
            "list.append is not allowed in expressions",
        ),
        (
            "memory.pop('n')",
            "expression \"memory.pop('n')\" failed: dict.pop is not allowed in expressions",
        ),
        (
            "input.ljust(10 ** 9)",
            "expression 'input.ljust(10 ** 9)' failed: LimitExceeded: str.ljust(1000000000) "
            "would build 1,000,000,000 characters; the limit is 100,000",
        ),
        ("input.nope", "expression 'input.nope' failed: str has no attribute 'nope'"),
        ("input.format()", "expression 'input.format()' failed: attribute 'format' is not allowed"),
        (
            "'x' * 200000",
            "expression \"'x' * 200000\" failed: Sorry, I will not evaluate something that long.",
        ),
    ],
)
def test_runtime_errors_name_the_expression_and_never_mutate_memory(
    source: str, message: str
) -> None:
    memory = {"n": 2, "tags": ["a", "b"]}
    with pytest.raises(ExpressionFailed) as caught:
        compile_expression(source).evaluate({**NAMES, "memory": memory})
    assert str(caught.value) == message
    assert memory == {"n": 2, "tags": ["a", "b"]}


def test_extra_names_are_allowed_only_where_declared() -> None:
    assert compile_expression("current + 1", BASE_NAMES | {"current"}).evaluate({"current": 1}) == 2
    with pytest.raises(ExpressionError):
        compile_expression("current + 1")


def test_compiled_expressions_are_cached_by_source() -> None:
    assert compile_expression("visit + 1") is compile_expression("visit + 1")

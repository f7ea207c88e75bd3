"""One output-size and work limit for templates and expressions: padding, formatting
and loops that would allocate gigabytes fail the node with a named error, at once."""

from __future__ import annotations

import time

import pytest
from std_support import line, nid, node, runner

from qm_nodes_std.limits import check_percent, percent_conversions
from quartermaster_engine import FlowStatus

LIMIT = "the limit is 100,000"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        (
            "{{ input.center(999999999) }}",
            f"str.center(999999999) would build 999,999,999 characters; {LIMIT}",
        ),
        (
            "{{ input.ljust(999999999) }}",
            f"str.ljust(999999999) would build 999,999,999 characters; {LIMIT}",
        ),
        (
            "{{ input.rjust(999999999) }}",
            f"str.rjust(999999999) would build 999,999,999 characters; {LIMIT}",
        ),
        (
            "{{ input.zfill(999999999) }}",
            f"str.zfill(999999999) would build 999,999,999 characters; {LIMIT}",
        ),
        (
            "{{ (input ~ '\\t').expandtabs(999999999) }}",
            f"str.expandtabs(999999999) would build 1,000,000,000 characters; {LIMIT}",
        ),
        (
            '{{ "{:>999999999}".format(1) }}',
            f"format specification '>999999999' would build 999,999,999 characters; {LIMIT}",
        ),
        (
            '{{ "%999999999s"|format(1) }}',
            f"'%999999999s' formatting would build 999,999,999 characters; {LIMIT}",
        ),
        (
            '{{ "%999999999s" % 1 }}',
            f"'%999999999s' formatting would build 999,999,999 characters; {LIMIT}",
        ),
        (
            "{% for i in range(50) %}{{ 'x' * 99999 }}{% endfor %}",
            "the template renders more than 1,000,000 characters (the limit)",
        ),
        (
            "{% for i in range(10001) %}{% endfor %}",
            "range of 10,001 items; the limit is 10,000",
        ),
    ],
    ids=[
        "center",
        "ljust",
        "rjust",
        "zfill",
        "expandtabs",
        "str.format",
        "format-filter",
        "percent",
        "output",
        "range",
    ],
)
def test_text1_padding_and_formatting_bombs_fail_the_node(template: str, problem: str) -> None:
    spec = line(("Write", node("Text1", text=template)))
    result = runner(spec).run("a")
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'Write' ({nid('Write')}): template {template!r} failed: LimitExceeded: {problem}"
    )


def test_padding_and_formatting_within_the_limit_still_work() -> None:
    text = (
        "{{ input.center(7, '*') }}|{{ '{:>4}'.format(7) }}|{{ '%03d'|format(5) }}|"
        "{{ input.zfill(3) }}"
    )
    result = runner(line(("Write", node("Text1", text=text)))).run("a")
    assert result.final_output == "***a***|   7|005|00a"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        (
            "input.center(999999999)",
            f"str.center(999999999) would build 999,999,999 characters; {LIMIT}",
        ),
        (
            '"%999999999s" % 1',
            f"'%999999999s' formatting would build 999,999,999 characters; {LIMIT}",
        ),
        ('"%*s" % (999999999, 1)', f"'%*s' formatting would build 999,999,999 characters; {LIMIT}"),
    ],
)
def test_expressions_have_the_same_limits(expression: str, problem: str) -> None:
    spec = line(("Keep", node("Var1", name="v", expression=expression)))
    result = runner(spec).run("a")
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'Keep' ({nid('Keep')}): expression {expression!r} failed: LimitExceeded: {problem}"
    )
    ok = runner(line(("Keep", node("Var1", name="v", expression="input.zfill(4) + '%3s' % 'b'"))))
    assert ok.run("a").status is FlowStatus.COMPLETED


BIG = "x" * 10_000  # 10,000 characters: each bomb below would build 100 MB to 10 GB
LINES = "x\n" * 5_000


@pytest.mark.parametrize(
    ("template", "given", "problem"),
    [
        (
            "{{ (input*10).join(input*10) }}",
            BIG,
            f"str.join would build 10,000,000,000 characters; {LIMIT}",
        ),
        (
            "{{ input.replace('x', input) }}",
            BIG,
            f"str.replace would build 100,000,000 characters; {LIMIT}",
        ),
        (
            "{{ input|center(300000000) }}",
            BIG,
            f"the center filter would build 300,000,000 characters; {LIMIT}",
        ),
        (
            "{{ input|indent(100) }}",
            LINES,
            f"the indent filter would build 510,100 characters; {LIMIT}",
        ),
        (
            "{{ input|wordwrap(1, true, input) }}",
            BIG,
            f"the wordwrap filter would build 100,000,000 characters; {LIMIT}",
        ),
        (
            "{{ (input*10)|join(input*10) }}",
            BIG,
            f"the join filter would build 10,000,000,000 characters; {LIMIT}",
        ),
        (
            "{{ input|replace('x', input) }}",
            BIG,
            f"the replace filter would build 100,000,000 characters; {LIMIT}",
        ),
        (
            "{{ input|tojson(indent=999999999) }}",
            BIG,
            f"the tojson filter's indent would build 999,999,999 characters; {LIMIT}",
        ),
        (
            "{{ input|batch(999999999, 0)|list }}",
            BIG,
            "the batch filter's count 999,999,999 is over the limit of 10,000",
        ),
        (
            "{{ input|slice(999999999)|list }}",
            BIG,
            "the slice filter's count 999,999,999 is over the limit of 10,000",
        ),
        (
            "{{ input|urlencode|urlencode }}",
            '"' * 30_000,
            f"the urlencode filter would build 150,000 characters; {LIMIT}",
        ),
        ("{{ lipsum(999999) }}", BIG, f"lipsum would build 1,199,998,800 characters; {LIMIT}"),
    ],
    ids=[
        "str.join",
        "str.replace",
        "center",
        "indent",
        "wordwrap",
        "join",
        "replace",
        "tojson",
        "batch",
        "slice",
        "urlencode",
        "lipsum",
    ],
)
def test_every_growing_operation_is_refused_before_it_allocates(
    template: str, given: str, problem: str
) -> None:
    spec = line(("Write", node("Text1", text=template)))
    result = runner(spec).run(given)
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'Write' ({nid('Write')}): template {template!r} failed: LimitExceeded: {problem}"
    )


def test_growing_filters_within_the_limit_still_work() -> None:
    text = (
        "{{ input|center(5) }}|{{ 'a\\nb'|indent(2, true) }}|"
        "{{ 'aa bb'|wordwrap(2, wrapstring='/') }}|"
        "{{ ['x', 'y']|join('-') }}|{{ [{'n': 1}, {'n': 2}]|join(',', attribute='n') }}|"
        "{{ input|replace('a', 'bb') }}|{{ '-'.join(['p', 'q']) }}|{{ 'a'.replace('a', 'cc', 1) }}|"
        "{{ [1, 2, 3]|batch(2, 0)|list }}|{{ {'k': 1}|tojson(indent=1) }}"
    )
    result = runner(line(("Write", node("Text1", text=text)))).run("a")
    assert result.final_output == (
        '  a  |  a\n  b|aa/bb|x-y|1,2|bb|p-q|cc|[[1, 2], [3, 0]]|{\n "k": 1\n}'
    )


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("(input*10).join(input*10)", f"str.join would build 10,000,000,000 characters; {LIMIT}"),
        ("input.replace('x', input)", f"str.replace would build 100,000,000 characters; {LIMIT}"),
    ],
)
def test_expressions_refuse_join_and_replace_bombs(expression: str, problem: str) -> None:
    spec = line(("Keep", node("Var1", name="v", expression=expression)))
    result = runner(spec).run(BIG)
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'Keep' ({nid('Keep')}): expression {expression!r} failed: LimitExceeded: {problem}"
    )
    fine = "'-'.join(input.split()) + input.replace('a', 'bb', 1)"
    ok = runner(line(("Keep", node("Var1", name="v", expression=fine)))).run("a a")
    assert ok.status is FlowStatus.COMPLETED


@pytest.mark.parametrize(
    "fmt", ["%" + "0" * 16_000 + "!", "%" + "0" * 8_000 + "." + "0" * 8_000 + "!", "%(" * 50_000]
)
def test_the_percent_check_is_linear(fmt: str) -> None:
    # The old regular expression took 8 s, 21 s and 3 s on these; one pass takes ms.
    started = time.perf_counter()
    check_percent(fmt, 1)
    assert time.perf_counter() - started < 0.5
    assert [c[1:] for c in percent_conversions("%(a(b))-05.3f %*d %%")] == [
        ("5", "3", "f"),
        ("*", None, "d"),
        (None, None, "%"),
    ]

"""One output-size and work limit for templates and expressions: padding, formatting
and loops that would allocate gigabytes fail the node with a named error, at once."""

from __future__ import annotations

import pytest
from std_support import line, nid, node, runner

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

"""If1, Switch1 and StaticDecision1: an expression picks the branch; errors name it."""

from __future__ import annotations

import pytest
from std_support import Recorder, graph, nid, node, runner

from quartermaster_engine import FlowError, FlowStatus, NodeConfigError
from quartermaster_graph import GraphSpec

PICK = {"traverse_out": "SpawnPickedNode"}


def if_graph(expression: str) -> GraphSpec:
    return graph(
        {
            "Urgent?": node("If1", if_expression=expression, fields=PICK),
            "Yes": node("Text1", text="urgent: {{ input }}"),
            "No": node("Text1", text="normal: {{ input }}"),
        },
        [
            ("Start", "Urgent?"),
            ("Urgent?", "Yes", "true"),
            ("Urgent?", "No", "false"),
            ("Yes", "End"),
            ("No", "End"),
        ],
    )


@pytest.mark.parametrize(
    ("text", "output", "ran"),
    [
        ("Site DOWN", "urgent: Site DOWN", "Yes"),
        ("a question", "normal: a question", "No"),
    ],
)
def test_if_picks_true_or_false_and_passes_its_input_on(text: str, output: str, ran: str) -> None:
    events = Recorder()
    result = runner(if_graph('"down" in input.lower()'), on_event=events).run(text)
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, output)
    assert events.runs() == ["Start", "Urgent?", ran, "End"]
    assert result.node_results[nid("Urgent?")].data == {
        "picked": "true" if ran == "Yes" else "false"
    }


def test_if_uses_the_truth_of_any_value() -> None:
    assert runner(if_graph("input.split()")).run("   ").final_output == "normal:    "


def test_an_expression_error_fails_the_node_with_the_expression_and_the_error() -> None:
    events = Recorder()
    result = runner(if_graph('memory["level"] > 2'), on_event=events).run("x")
    assert result.status is FlowStatus.FAILED
    message = "expression 'memory[\"level\"] > 2' failed: KeyError: 'level'"
    assert result.error == f"node 'Urgent?' ({nid('Urgent?')}): {message}"
    assert [(e.node_name, e.error) for e in events.of(FlowError)] == [("Urgent?", message)]
    assert events.runs() == ["Start", "Urgent?"]


def test_a_syntax_error_is_found_before_the_flow_starts() -> None:
    run = runner(if_graph('"down" in input.lower('))
    with pytest.raises(NodeConfigError) as caught:
        run.run("x")
    assert str(caught.value) == (
        "graph g has invalid node settings:\n"
        f"  node 'Urgent?' ({nid('Urgent?')}): metadata 'if_expression': invalid syntax in "
        "'\"down\" in input.lower(': '(' was never closed (column 22)"
    )
    assert run.store.list_flows() == []


def test_if_without_expression_is_a_settings_error() -> None:
    with pytest.raises(NodeConfigError) as caught:
        runner(if_graph("")).run("x")
    assert str(caught.value).splitlines()[1] == (
        f"  node 'Urgent?' ({nid('Urgent?')}): metadata 'if_expression' is required"
    )


def switch_graph(cases: object, default: str = "", **extra: object) -> GraphSpec:
    labels = ["billing", "outage", "general"]
    return graph(
        {
            "Route": node("Switch1", cases=cases, default=default, **extra, fields=PICK),
            **{label: node("Text1", text=f"{label}: {{{{ input }}}}") for label in labels},
        },
        [
            ("Start", "Route"),
            *(("Route", label, label) for label in labels),
            *((label, "End") for label in labels),
        ],
    )


CASES = [
    {"label": "billing", "expression": '"invoice" in input.lower()'},
    {"label": "outage", "expression": '"down" in input.lower()'},
]


@pytest.mark.parametrize(
    ("text", "output"),
    [
        ("Invoice wrong", "billing: Invoice wrong"),
        ("Site down", "outage: Site down"),
        # Both cases hold: the first one in order wins.
        ("Invoice site is down", "billing: Invoice site is down"),
        ("Hello", "general: Hello"),
    ],
)
def test_switch_takes_the_first_true_case_else_the_default(text: str, output: str) -> None:
    events = Recorder()
    result = runner(switch_graph(CASES, "general"), on_event=events).run(text)
    assert result.final_output == output
    assert len(events.runs()) == 4


def test_switch_without_match_or_default_fails_naming_the_cases() -> None:
    result = runner(switch_graph(CASES)).run("Hello")
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'Route' ({nid('Route')}): no case matched and there is no default; cases: "
        'billing ("invoice" in input.lower()), outage ("down" in input.lower())'
    )


def test_switch_expressions_are_checked_before_the_flow_starts() -> None:
    cases = [
        {"label": "billing", "expression": "input +"},
        {"label": "outage", "expression": "inpt == 'down'"},
    ]
    with pytest.raises(NodeConfigError) as caught:
        runner(switch_graph(cases, default="general")).run("x")
    where = f"  node 'Route' ({nid('Route')}): "
    assert str(caught.value).splitlines()[1:] == [
        where + "metadata 'cases'[0] 'expression': invalid syntax in 'input +': "
        "invalid syntax (column 8)",
        where + "metadata 'cases'[1] 'expression': \"inpt == 'down'\" uses unknown name "
        "'inpt'; expressions can use names input, memory, outputs, visit; functions len, "
        "str, int, float, bool, abs, min, max, round, sum, sorted, any, all, list, dict, "
        "tuple, set; True, False, None",
    ]


def decision_graph(expression: str) -> GraphSpec:
    labels = ["true", "false", "gold", "3"]
    return graph(
        {
            "Decide": node("StaticDecision1", expression=expression, fields=PICK),
            **{label: node("Static1", static_text=f"went {label}") for label in labels},
        },
        [
            ("Start", "Decide"),
            *(("Decide", label, label) for label in labels),
            *((label, "End") for label in labels),
        ],
    )


@pytest.mark.parametrize(
    ("expression", "output"),
    [
        ("len(input) > 3", "went true"),
        ("len(input) > 30", "went false"),
        ("'go' + 'ld'", "went gold"),
        ("1 + 2", "went 3"),
    ],
)
def test_static_decision_picks_by_boolean_or_label(expression: str, output: str) -> None:
    assert runner(decision_graph(expression)).run("hello").final_output == output


def test_static_decision_refuses_other_values_and_unknown_labels() -> None:
    result = runner(decision_graph("[1]")).run("x")
    assert result.error == (
        f"node 'Decide' ({nid('Decide')}): expression '[1]' gave list [1]; "
        "a decision needs a boolean, a string or a number"
    )
    result = runner(decision_graph("'silver'")).run("x")
    assert result.error == (
        f"node 'Decide' ({nid('Decide')}) picked 'silver', which matches no branch; "
        "valid choices: 'true', 'false', 'gold', '3'"
    )

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


# -- which edges If1 and Switch1 need: the pack's own checks ---------------------------


def main_edge_if_graph(labels: tuple[str, str]) -> GraphSpec:
    """If1 drawn as 0.1.5 drew it: the is_main edge is the true branch."""
    spec = graph(
        {
            "Check": node("If1", if_expression='"yes" in input', fields=PICK),
            "Counter": node("Text1", text="counted: {{ input }}"),
            "Other": node("Text1", text="other: {{ input }}"),
        },
        [
            ("Start", "Check"),
            ("Check", "Other", labels[1]),
            ("Check", "Counter", labels[0]),
            ("Counter", "End"),
            ("Other", "End"),
        ],
    )
    spec.edges[1].is_main = False
    return spec


@pytest.mark.parametrize("labels", [("", ""), ("Counter", "Other")])
@pytest.mark.parametrize(
    ("text", "output", "ran", "picked"),
    [
        ("yes please", "counted: yes please", "Counter", "true"),
        ("no", "other: no", "Other", "false"),
    ],
)
def test_if_takes_the_is_main_edge_for_true_in_a_graph_without_true_false_labels(
    labels: tuple[str, str], text: str, output: str, ran: str, picked: str
) -> None:
    events = Recorder()
    result = runner(main_edge_if_graph(labels), on_event=events).run(text)
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, output)
    assert events.runs() == ["Start", "Check", ran, "End"]
    assert result.node_results[nid("Check")].data == {"picked": picked}


def if_edges_error(edges: list[tuple[str, ...]]) -> list[str]:
    spec = graph(
        {
            "Check": node("If1", if_expression="True", fields=PICK),
            "A": node("Static1", static_text="a"),
            "B": node("Static1", static_text="b"),
        },
        [("Start", "Check"), *edges, ("A", "End"), ("B", "End")],
    )
    run = runner(spec)
    with pytest.raises(NodeConfigError) as caught:
        run.run("x")
    assert run.store.list_flows() == []
    lines = str(caught.value).splitlines()
    assert lines[0] == "graph g has invalid node settings:"
    return lines[1:]


def test_if_edges_labelled_other_than_true_or_false_are_refused_before_the_flow() -> None:
    where = f"  node 'Check' ({nid('Check')}): "
    assert if_edges_error([("Check", "A", "true"), ("Check", "B", "yes")]) == [
        where + "its edge to 'B' is labelled 'yes'; If1 edges are labelled 'true' or 'false'",
        where + "no outgoing edge labelled 'false'",
    ]
    assert if_edges_error([("Check", "A", "false"), ("Check", "B")]) == [
        where + "its edge to 'B' is unlabelled; If1 edges are labelled 'true' or 'false'",
        where + "no outgoing edge labelled 'true'",
    ]


def test_if_edges_not_told_apart_by_is_main_are_refused_before_the_flow() -> None:
    # Both edges default to is_main=True, and neither is labelled true or false.
    assert if_edges_error([("Check", "A"), ("Check", "B")]) == [
        f"  node 'Check' ({nid('Check')}): it has 2 outgoing edges and none labelled 'true' "
        "or 'false'; If1 needs an edge labelled 'true' and one labelled 'false', or (as in "
        "0.1.5) exactly two edges, the true branch with is_main=True and the false one with "
        "is_main=False"
    ]


def test_switch_cases_without_a_branch_are_refused_before_the_flow() -> None:
    spec = switch_graph([*CASES, {"label": "refund", "expression": "False"}], default="fallback")
    run = runner(spec)
    with pytest.raises(NodeConfigError) as caught:
        run.run("x")
    where = f"  node 'Route' ({nid('Route')}): "
    assert str(caught.value).splitlines()[1:] == [
        where + "case 'refund' has no outgoing edge labelled 'refund' (nor a successor of "
        "that name)",
        where + "default 'fallback' has no outgoing edge labelled 'fallback' (nor a successor "
        "of that name)",
    ]
    assert run.store.list_flows() == []


def test_switch_cases_may_pick_unlabelled_edges_by_target_name() -> None:
    labels = ["billing", "outage", "general"]
    spec = graph(
        {
            "Route": node("Switch1", cases=CASES, default="general", fields=PICK),
            **{label: node("Text1", text=f"{label}: {{{{ input }}}}") for label in labels},
        },
        [
            ("Start", "Route"),
            *(("Route", label) for label in labels),
            *((label, "End") for label in labels),
        ],
    )
    events = Recorder()
    assert runner(spec, on_event=events).run("Site down").final_output == "outage: Site down"
    assert events.runs() == ["Start", "Route", "outage", "End"]


def test_switch_case_with_0_1_5_edge_id_is_explained() -> None:
    spec = switch_graph([{"expression": "True", "edge_id": "billing"}], default="general")
    with pytest.raises(NodeConfigError) as caught:
        runner(spec).run("x")
    assert str(caught.value).splitlines()[1:] == [
        f"  node 'Route' ({nid('Route')}): metadata 'cases'[0] has no 'label' (0.1.5's "
        "'edge_id' is read as the label by GraphBuilder.switch(); graph files name it 'label')"
    ]

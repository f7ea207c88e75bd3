"""User1, UserDecision1 and UserForm1: pause with a prompt, resume with the answer, and
ask again when the answer does not fit."""

from __future__ import annotations

import json

import pytest
from std_support import Recorder, graph, line, nid, node, runner

from qm_nodes_std import FormAnswerError, parse_answer
from quartermaster_engine import FlowStatus, NodeConfigError, UserInputRequired
from quartermaster_graph import GraphSpec


def test_user_pauses_with_its_rendered_prompt_and_outputs_the_answer() -> None:
    spec = line(
        ("Topic", node("Static1", static_text="billing")),
        ("Ask", node("User1", text_snippets=["About {{ input }}:", "What went wrong?"])),
    )
    events = Recorder()
    run = runner(spec, on_event=events)
    paused = run.run("x")
    assert paused.status is FlowStatus.PAUSED
    assert [(w.node_name, w.prompt, w.options) for w in paused.waiting] == [
        ("Ask", "About billing:\nWhat went wrong?", [])
    ]
    done = run.resume(paused.flow_id, "double charge")
    assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "double charge")
    assert events.runs() == ["Start", "Topic", "Ask", "Ask", "End"]


@pytest.mark.parametrize(
    ("before", "prompt"), [("Your order number?", "Your order number?"), ("", "Your answer?")]
)
def test_user_without_prompts_asks_its_input(before: str, prompt: str) -> None:
    spec = line(("Q", node("Static1", static_text=before)), ("Ask", node("User1")))
    assert runner(spec).run("x").waiting[0].prompt == prompt


def decision_graph(**metadata: object) -> GraphSpec:
    return graph(
        {
            "Draft": node("Static1", static_text="the draft"),
            "Choose": node("UserDecision1", **metadata, fields={"traverse_out": "SpawnPickedNode"}),
            "Ship": node("Text1", text="shipped {{ input }}"),
            "Bin": node("Text1", text="binned {{ input }}"),
        },
        [
            ("Start", "Draft"),
            ("Draft", "Choose"),
            ("Choose", "Ship", "Approve"),
            ("Choose", "Bin", "Reject"),
            ("Ship", "End"),
            ("Bin", "End"),
        ],
    )


def test_user_decision_offers_its_edge_labels_and_the_answer_picks_the_branch() -> None:
    events = Recorder()
    run = runner(decision_graph(), on_event=events)
    paused = run.run("x")
    assert [(w.prompt, w.options) for w in paused.waiting] == [("the draft", ["Approve", "Reject"])]
    done = run.resume(paused.flow_id, "  approve ")
    assert done.final_output == "shipped the draft"
    assert done.node_results[nid("Choose")].data == {"choice": "Approve"}
    assert events.runs() == ["Start", "Draft", "Choose", "Choose", "Ship", "End"]


def test_user_decision_asks_again_when_the_answer_is_no_option() -> None:
    events = Recorder()
    run = runner(decision_graph(prompt="Ship {{ input }}?"), on_event=events)
    paused = run.run("x")
    assert paused.waiting[0].prompt == "Ship the draft?"
    again = run.resume(paused.flow_id, "maybe")
    assert again.status is FlowStatus.PAUSED
    assert [(w.prompt, w.options, w.visit) for w in again.waiting] == [
        (
            "'maybe' is not one of the options: Approve, Reject\nShip the draft?",
            ["Approve", "Reject"],
            1,
        )
    ]
    assert [e.prompt for e in events.of(UserInputRequired)] == [
        "Ship the draft?",
        "'maybe' is not one of the options: Approve, Reject\nShip the draft?",
    ]
    done = run.resume(again.flow_id, "Reject")
    assert done.final_output == "binned the draft"


FIELDS = [
    {"name": "email", "type": "string", "description": "Where we answer"},
    {"name": "age", "type": "integer"},
    {"name": "plan", "options": ["free", "pro"], "default": "free"},
    {"name": "newsletter", "type": "boolean", "required": False},
]
FORM_PROMPT = (
    "Please fill in:\n"
    "- email (string, required): Where we answer\n"
    "- age (integer, required)\n"
    "- plan (one of free, pro, optional, default 'free')\n"
    "- newsletter (boolean, optional)\n"
    "Answer with a JSON object, or one key=value per line."
)


def form_graph(**metadata: object) -> GraphSpec:
    return line(
        ("Form", node("UserForm1", parameters=FIELDS, **metadata)),
        ("Thanks", node("Text1", text="{{ memory.email }} ({{ memory.age }}, {{ memory.plan }})")),
    )


@pytest.mark.parametrize(
    "answer",
    [
        '{"email": "ada@example.com", "age": 36, "newsletter": true}',
        "email = ada@example.com\nage=36\n\nnewsletter=yes\nplan=",
    ],
)
def test_user_form_validates_the_answer_and_stores_it_in_memory(answer: str) -> None:
    run = runner(form_graph())
    paused = run.run("x")
    assert paused.waiting[0].prompt == FORM_PROMPT
    done = run.resume(paused.flow_id, answer)
    assert done.final_output == "ada@example.com (36, free)"
    values = {"email": "ada@example.com", "age": 36, "plan": "free", "newsletter": True}
    assert run.store.get_all_memory(done.flow_id) == values
    assert json.loads(done.node_results[nid("Form")].output_text or "") == values


def test_an_invalid_form_answer_asks_again_with_every_error() -> None:
    run = runner(form_graph(prompt="Sign up for {{ input }}"))
    paused = run.run("Pro")
    assert paused.waiting[0].prompt == "Sign up for Pro"
    again = run.resume(paused.flow_id, "age=old\nplan=gold\ncolour=red")
    assert again.status is FlowStatus.PAUSED
    assert again.waiting[0].prompt == (
        "The answer is not valid:\n"
        "- email: Field required\n"
        "- age: Input should be a valid integer, unable to parse string as an integer\n"
        "- plan: Input should be 'free' or 'pro'\n"
        "- colour: Extra inputs are not permitted\n"
        "Sign up for Pro"
    )
    again = run.resume(again.flow_id, "not a form")
    assert again.waiting[0].prompt == (
        "The answer is not valid:\n- line 1 'not a form' is not key=value\nSign up for Pro"
    )
    done = run.resume(again.flow_id, '{"email": "a@b.c", "age": "41"}')
    assert done.final_output == "a@b.c (41, free)"


def test_form_answers_parse_as_json_or_key_value_lines() -> None:
    assert parse_answer('{"a": 1, "b": null, "c": ""}') == {"a": 1}
    assert parse_answer("a = 1\n b=x=y \n\nc=") == {"a": "1", "b": "x=y"}
    with pytest.raises(FormAnswerError) as caught:
        parse_answer("a=1\na=2\nb")
    assert caught.value.problems == ["a: given twice", "line 3 'b' is not key=value"]
    with pytest.raises(FormAnswerError) as caught:
        parse_answer("{nope")
    assert caught.value.problems == [
        "invalid JSON: Expecting property name enclosed in double quotes (column 2)"
    ]


def test_form_fields_are_checked_before_the_flow_starts() -> None:
    spec = line(
        (
            "Form",
            node(
                "UserForm1",
                parameters=[
                    {"name": "a", "type": "date"},
                    {"name": "a"},
                    {"type": "string"},
                    {"name": "b", "requried": True},
                ],
            ),
        ),
        ("Empty", node("UserForm1")),
    )
    with pytest.raises(NodeConfigError) as caught:
        runner(spec).run("x")
    where = f"  node 'Form' ({nid('Form')}): metadata 'parameters'"
    assert str(caught.value).splitlines()[1:] == [
        where + "[0] (a): type 'date' is not one of string, str, text, integer, int, number, "
        "float, boolean, bool",
        where + ": field 'a' is defined twice",
        where + "[2] has no 'name'",
        where + "[3] has unknown keys ['requried']; known: name, type, required, default, "
        "description, label, options",
        f"  node 'Empty' ({nid('Empty')}): metadata 'parameters' is empty: list the form's fields",
    ]

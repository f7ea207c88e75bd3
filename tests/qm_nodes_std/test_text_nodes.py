"""Static1, Text1, Blank1, Comment1, Break1, StaticMerge1, Var1 and TextToVariable1."""

from __future__ import annotations

import pytest
from std_support import Recorder, graph, line, nid, node, runner

from qm_nodes_std import std_registry
from quartermaster_engine import ExecutionContext, FlowRunner, FlowStatus, NodeConfigError
from quartermaster_engine.types import MessageRole


def test_static_outputs_its_text_whatever_its_input() -> None:
    result = runner(line(("Say", node("Static1", static_text="Hello!")))).run("ignored")
    assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "Hello!")


def test_text_renders_input_memory_outputs_and_visit() -> None:
    spec = graph(
        {
            "Keep": node("Var1", name="topic", expression="'billing'"),
            "Write": node(
                "Text1",
                text="{{ visit }}: about {{ memory.topic }}, {{ input | upper }} "
                "(from {{ outputs | list | join(',') }})",
            ),
        },
        [("Start", "Keep"), ("Keep", "Write"), ("Write", "End")],
    )
    result = runner(spec).run("refund please")
    assert result.final_output == "1: about billing, REFUND PLEASE (from Keep)"


def test_text_with_an_undefined_key_fails_naming_it() -> None:
    events = Recorder()
    spec = line(("Write", node("Text1", text="Dear {{ memory.customer }}")))
    result = runner(spec, on_event=events).run("x")
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'Write' ({nid('Write')}): template 'Dear {{{{ memory.customer }}}}' failed: "
        "'dict object' has no attribute 'customer'"
    )
    assert events.runs() == ["Start", "Write"]


def test_optional_values_use_default_or_is_defined() -> None:
    spec = line(
        (
            "Write",
            node(
                "Text1",
                text="{{ memory.name | default('friend') }}"
                "{% if memory.vip is defined %} (VIP){% endif %}",
            ),
        )
    )
    assert runner(spec).run("x").final_output == "friend"


def test_template_problems_are_found_before_the_flow_starts() -> None:
    spec = graph(
        {
            "Broken": node("Text1", text="Hi {{ input"),
            "Typo": node("Text1", text="Hi {{ inptu }}"),
        },
        [("Start", "Broken"), ("Broken", "Typo"), ("Typo", "End")],
    )
    run = runner(spec)
    with pytest.raises(NodeConfigError) as caught:
        run.run("x")
    assert str(caught.value).splitlines() == [
        "graph g has invalid node settings:",
        f"  node 'Broken' ({nid('Broken')}): metadata 'text': invalid template 'Hi {{{{ input': "
        "unexpected end of template, expected 'end of print statement'. (line 1)",
        f"  node 'Typo' ({nid('Typo')}): metadata 'text': template 'Hi {{{{ inptu }}}}' uses "
        "unknown name 'inptu'; templates can use input, memory, outputs, visit",
    ]
    assert run.store.list_flows() == []


def test_the_sandbox_refuses_unsafe_attributes_and_changes_to_memory() -> None:
    spec = graph(
        {
            "Keep": node("Var1", name="items", expression="[1]"),
            "Escape": node("Text1", text="{{ input.__class__.__mro__ }}"),
        },
        [("Start", "Keep"), ("Keep", "Escape"), ("Escape", "End")],
    )
    result = runner(spec).run("x")
    assert result.error == (
        f"node 'Escape' ({nid('Escape')}): template '{{{{ input.__class__.__mro__ }}}}' failed: "
        "access to attribute '__class__' of 'str' object is unsafe."
    )
    mutate = graph(
        {
            "Keep": node("Var1", name="items", expression="[1]"),
            "Append": node("Text1", text="{{ memory['items'].append(2) }}"),
        },
        [("Start", "Keep"), ("Keep", "Append"), ("Append", "End")],
    )
    result = runner(mutate).run("x")
    assert result.error == (
        f"node 'Append' ({nid('Append')}): template \"{{{{ memory['items'].append(2) }}}}\" "
        "failed: access to attribute 'append' of 'list' object is unsafe."
    )


@pytest.mark.parametrize("node_type", ["Blank1", "Comment1"])
def test_blank_and_comment_pass_their_input_on(node_type: str) -> None:
    spec = line(("Pass", node(node_type, comment="does nothing")))
    assert runner(spec).run("as is").final_output == "as is"


def test_break_passes_its_input_on_and_cuts_the_history_before_it() -> None:
    seen: list[list[tuple[MessageRole, str]]] = []

    async def look(ctx: ExecutionContext) -> str:
        seen.append([(m.role, m.content) for m in ctx.messages])
        return ctx.input_text

    spec = graph(
        {
            "First": node("Static1", static_text="one"),
            "Break": node("Break1", break_targets=[], fields={"thought_type": "SkipThought1"}),
            "Look": {"type": "look", "thought_type": "ContinueThought1"},
        },
        [("Start", "First"), ("First", "Break"), ("Break", "Look"), ("Look", "End")],
    )

    registry = std_registry()
    registry.register("look", look)
    result = FlowRunner(spec, registry).run("start")
    assert result.final_output == "one"
    assert seen == [[(MessageRole.ASSISTANT, "one")]]


def test_break_refuses_targeted_breaks() -> None:
    spec = line(("Break", node("Break1", break_targets=["tools"])))
    with pytest.raises(NodeConfigError) as caught:
        runner(spec).run("x")
    assert str(caught.value).splitlines()[1] == (
        f"  node 'Break' ({nid('Break')}): metadata 'break_targets' ['tools'] is not "
        "supported: only [] (cut the whole history) is"
    )


def test_static_merge_joins_inputs_in_edge_order_under_its_text() -> None:
    branches = ["A", "B", "C"]
    spec = graph(
        {
            **{b: node("Text1", text=f"{b}: {{{{ input }}}}") for b in branches},
            "Merge": node(
                "StaticMerge1", static_text="Reviews:", fields={"traverse_in": "AwaitAll"}
            ),
        },
        # Edges into the merge listed C, A, B: that is the order of the output.
        [
            *(("Start", b) for b in branches),
            ("C", "Merge"),
            ("A", "Merge"),
            ("B", "Merge"),
            ("Merge", "End"),
        ],
    )
    events = Recorder()
    result = runner(spec, on_event=events).run("code")
    assert result.final_output == "Reviews:\nC: code\nA: code\nB: code"
    assert events.runs().count("Merge") == 1


def test_static_merge_without_text_joins_only_the_branches_that_ran() -> None:
    spec = graph(
        {
            "Pick": node("If1", if_expression="True", fields={"traverse_out": "SpawnPickedNode"}),
            "Yes": node("Static1", static_text="yes"),
            "No": node("Static1", static_text="no"),
            "Merge": node("StaticMerge1", fields={"traverse_in": "AwaitAll"}),
        },
        [
            ("Start", "Pick"),
            ("Pick", "Yes", "true"),
            ("Pick", "No", "false"),
            ("Yes", "Merge"),
            ("No", "Merge"),
            ("Merge", "End"),
        ],
    )
    events = Recorder()
    result = runner(spec, on_event=events).run("x")
    assert result.final_output == "yes"
    assert events.runs() == ["Start", "Pick", "Yes", "Merge", "End"]


def test_var_stores_the_value_of_its_expression_and_passes_its_input_on() -> None:
    spec = line(
        ("Count", node("Var1", name="words", expression="len(input.split())")),
        ("Show", node("Text1", text="{{ input }} has {{ memory.words }} words")),
    )
    run = runner(spec)
    result = run.run("three short words")
    assert result.final_output == "three short words has 3 words"
    assert run.store.get_all_memory(result.flow_id) == {"words": 3}


def test_var_settings_and_values_are_checked() -> None:
    spec = line(("Count", node("Var1", name="", expression="len(")))
    with pytest.raises(NodeConfigError) as caught:
        runner(spec).run("x")
    assert str(caught.value).splitlines()[1:] == [
        f"  node 'Count' ({nid('Count')}): metadata 'name' is required",
        f"  node 'Count' ({nid('Count')}): metadata 'expression': invalid syntax in 'len(': "
        "'(' was never closed (column 4)",
    ]
    unstorable = line(("Keep", node("Var1", name="s", expression="set([1])")))
    result = runner(unstorable).run("x")
    assert result.error == (
        f"node 'Keep' ({nid('Keep')}): variable 's': a set cannot be stored in memory "
        "(use strings, numbers, booleans, None, lists and dicts)"
    )


def test_text_to_variable_stores_the_input_or_a_named_predecessor_output() -> None:
    spec = graph(
        {
            "Draft": node("Static1", static_text="the draft"),
            "Note": node("Static1", static_text="a note"),
            "Both": node("StaticMerge1", fields={"traverse_in": "AwaitAll"}),
            "Keep all": node("TextToVariable1", variable="all"),
            "Keep draft": node("TextToVariable1", variable="draft", source="Draft"),
            "End": {"type": "End1", "traverse_in": "AwaitAll"},
        },
        [
            ("Start", "Draft"),
            ("Start", "Note"),
            ("Draft", "Both"),
            ("Note", "Both"),
            ("Both", "Keep all"),
            ("Keep all", "End"),
            ("Draft", "Keep draft"),
            ("Keep draft", "End"),
        ],
    )
    run = runner(spec)
    result = run.run("x")
    assert run.store.get_all_memory(result.flow_id) == {
        "draft": "the draft",
        "all": "the draft\na note",
    }
    assert result.final_output == "the draft\na note\nthe draft"


def test_text_to_variable_source_must_be_a_predecessor() -> None:
    spec = line(("Keep", node("TextToVariable1", variable="v", source="Nobody")))
    with pytest.raises(NodeConfigError) as caught:
        runner(spec).run("x")
    assert str(caught.value).splitlines()[1] == (
        f"  node 'Keep' ({nid('Keep')}): metadata 'source' 'Nobody' is not a predecessor; "
        "predecessors: 'Start'"
    )


def test_templates_keep_the_expression_size_limits() -> None:
    spec = line(("Big", node("Text1", text="{{ input * 1000000 }}")))
    assert runner(spec).run("ab").error == (
        f"node 'Big' ({nid('Big')}): template '{{{{ input * 1000000 }}}}' failed: "
        "IterableTooLong: Sorry, I will not evaluate something that long."
    )
    assert runner(line(("Ok", node("Text1", text="{{ input * 3 }}")))).run("ab").final_output == (
        "ababab"
    )

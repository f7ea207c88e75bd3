"""WriteMemory1, UpdateMemory1, ReadMemory1, FlowMemory1 and UserMemory1, on flow memory
and on the agent's persistent (user) memory."""

from __future__ import annotations

from typing import Any

import pytest
from std_support import AsyncPersistence, Recorder, graph, line, nid, node, runner

from quartermaster_engine import FlowStatus, InMemoryStore, NodeConfigError


def variables(**expressions: str) -> list[dict[str, str]]:
    return [{"name": k, "expression": v} for k, v in expressions.items()]


def test_write_memory_evaluates_variables_in_order_and_passes_its_input_on() -> None:
    spec = line(
        (
            "Keep",
            node(
                "WriteMemory1",
                memory_name="ticket",
                variables=variables(
                    text="input.strip()",
                    words="len(memory['text'].split())",
                    seen="current",
                ),
            ),
        ),
    )
    run = runner(spec)
    result = run.run("  my invoice is wrong ")
    assert result.final_output == "  my invoice is wrong "
    assert run.store.get_all_memory(result.flow_id) == {
        "text": "my invoice is wrong",
        "words": 4,
        "seen": None,
    }


def test_update_memory_changes_existing_keys_and_sees_their_current_value() -> None:
    spec = line(
        ("Init", node("WriteMemory1", variables=variables(count="1", log="'a'"))),
        (
            "Bump",
            node("UpdateMemory1", variables=variables(count="current + 1", log="current + input")),
        ),
        ("Show", node("Text1", text="{{ memory.count }} {{ memory.log }}")),
    )
    assert runner(spec).run("b").final_output == "2 ab"


def test_update_memory_of_a_missing_key_fails_naming_the_keys_there_are() -> None:
    spec = line(
        ("Init", node("WriteMemory1", variables=variables(count="1"))),
        ("Bump", node("UpdateMemory1", variables=variables(cuont="current + 1"))),
    )
    result = runner(spec).run("x")
    assert result.status is FlowStatus.FAILED
    assert result.error == (
        f"node 'Bump' ({nid('Bump')}): cannot update 'cuont': flow memory has no such key "
        "(it has count); WriteMemory1 creates keys"
    )


def test_read_memory_outputs_one_value_as_text_and_several_as_json() -> None:
    spec = graph(
        {
            "Init": node("WriteMemory1", variables=variables(name="'Ada'", n="2", tags="['x']")),
            "One": node("ReadMemory1", variable_names=["name"]),
            "Two": node("ReadMemory1", variable_names=["n", "tags"]),
            "All": node("ReadMemory1"),
        },
        [("Start", "Init"), ("Init", "One"), ("One", "Two"), ("Two", "All"), ("All", "End")],
    )
    events = Recorder()
    result = runner(spec, on_event=events).run("x")
    assert events.finished()[2:5] == [
        ("One", "Ada"),
        ("Two", '{"n": 2, "tags": ["x"]}'),
        ("All", '{"name": "Ada", "n": 2, "tags": ["x"]}'),
    ]
    assert result.node_results[nid("Two")].data == {"values": {"n": 2, "tags": ["x"]}}


def test_read_memory_of_a_missing_key_fails() -> None:
    spec = line(("Read", node("ReadMemory1", variable_names=["ticket_id"])))
    result = runner(spec).run("x")
    assert result.error == (
        f"node 'Read' ({nid('Read')}): flow memory has no key 'ticket_id'; it is empty"
    )


def test_memory_settings_are_checked_before_the_flow_starts() -> None:
    spec = graph(
        {
            "W": node("WriteMemory1", memory_type="disk", variables=[{"name": "a"}]),
            "U": node("UpdateMemory1", variables=[]),
            "R": node("ReadMemory1", variable_names="a"),
            "F": node("FlowMemory1", initial_data=[{"value": 1}]),
        },
        [("Start", "W"), ("W", "U"), ("U", "R"), ("R", "F"), ("F", "End")],
    )
    with pytest.raises(NodeConfigError) as caught:
        runner(spec).run("x")
    assert str(caught.value).splitlines()[1:] == [
        f"  node 'W' ({nid('W')}): metadata 'memory_type' must be 'flow' or 'user', got 'disk'",
        f"  node 'W' ({nid('W')}): metadata 'variables'[0] 'expression' is required",
        f"  node 'U' ({nid('U')}): metadata 'variables' is empty: list [{{name, expression}}] "
        "entries",
        f"  node 'R' ({nid('R')}): metadata 'variable_names' must be a list, got str",
        f"  node 'F' ({nid('F')}): metadata 'initial_data'[0] needs a 'key' (or 'name') and "
        "a 'value'",
    ]


def test_flow_memory_applies_its_initial_data_without_overwriting() -> None:
    spec = line(
        ("Preset", node("WriteMemory1", variables=variables(lang="'fr'"))),
        (
            "Memory",
            node(
                "FlowMemory1",
                memory_name="prefs",
                initial_data=[{"key": "lang", "value": "en"}, {"key": "tone", "value": "warm"}],
            ),
        ),
    )
    run = runner(spec)
    result = run.run("hi")
    assert result.final_output == "hi"
    assert run.store.get_all_memory(result.flow_id) == {"lang": "fr", "tone": "warm"}


def test_an_unconnected_flow_memory_declares_defaults_for_the_pack_nodes() -> None:
    spec = graph(
        {
            "Prefs": node("FlowMemory1", initial_data={"greeting": "Hello", "count": 0}),
            "Bump": node("UpdateMemory1", variables=variables(count="current + 1")),
            "Say": node("Text1", text="{{ memory.greeting }} x{{ memory.count }}"),
        },
        [("Start", "Bump"), ("Bump", "Say"), ("Say", "End")],
    )
    events = Recorder()
    run = runner(spec, on_event=events)
    result = run.run("x")
    assert result.final_output == "Hello x1"
    assert "Prefs" not in events.runs()
    assert run.store.get_all_memory(result.flow_id) == {"count": 1}


def counter_graph() -> Any:
    return line(
        (
            "Profile",
            node(
                "UserMemory1", memory_name="profile", initial_data=[{"key": "visits", "value": "0"}]
            ),
        ),
        (
            "Count",
            node(
                "UpdateMemory1", memory_type="user", variables=variables(visits="int(current) + 1")
            ),
        ),
        ("Say", node("Text1", text="visit {{ memory.visits }}")),
        name="counter",
    )


def test_user_memory_survives_two_runners_on_one_store() -> None:
    store = InMemoryStore()
    spec = counter_graph()
    first = runner(spec, store=store).run("a")
    second = runner(spec, store=store).run("b")
    assert (first.final_output, second.final_output) == ("visit 1", "visit 2")
    persistence = store.persistent_memory()
    assert persistence.read(spec.agent_id, "visits") == "2"
    assert persistence.list_keys(spec.agent_id) == ["visits"]


def test_user_memory_works_with_async_persistent_memory() -> None:
    persistence = AsyncPersistence()
    spec = counter_graph()
    outputs = [runner(spec, persistence=persistence).run("x").final_output for _ in range(3)]
    assert outputs == ["visit 1", "visit 2", "visit 3"]


def test_user_memory_write_read_and_missing_keys() -> None:
    store = InMemoryStore()
    writer = line(
        (
            "Save",
            node(
                "WriteMemory1",
                memory_type="user",
                variables=variables(name="input", langs="['fr', 'en']"),
            ),
        ),
        name="writer",
    )
    first = runner(writer, store=store).run("Ada")
    assert first.node_results[nid("Save")].data == {
        "memory_updates": {"name": "Ada", "langs": '["fr", "en"]'}
    }
    reader = line(
        ("Load", node("ReadMemory1", memory_type="user", variable_names=["name", "langs"])),
        ("Say", node("Text1", text="{{ memory.name }} speaks {{ memory.langs }}")),
        name="reader",
    )
    reader = reader.model_copy(update={"agent_id": writer.agent_id})
    assert runner(reader, store=store).run("x").final_output == 'Ada speaks ["fr", "en"]'

    missing = line(("Load", node("ReadMemory1", memory_type="user", variable_names=["age"])))
    missing = missing.model_copy(update={"agent_id": writer.agent_id})
    result = runner(missing, store=store).run("x")
    assert result.error == (
        f"node 'Load' ({nid('Load')}): user memory of agent {writer.agent_id} has no key "
        "'age'; it has langs, name"
    )
    update = line(("Fix", node("UpdateMemory1", memory_type="user", variables=variables(age="30"))))
    result = runner(update, store=store).run("x")
    assert result.error == (
        f"node 'Fix' ({nid('Fix')}): user memory of agent {update.agent_id} has no key "
        "'age'; it is empty"
    )


def test_user_memory_without_declared_keys_loads_every_key() -> None:
    persistence = AsyncPersistence()
    spec = line(
        ("Load", node("UserMemory1", memory_name="profile")),
        ("Say", node("ReadMemory1")),
    )
    import asyncio

    asyncio.run(persistence.write(spec.agent_id, "city", "Oslo"))
    result = runner(spec, persistence=persistence).run("x")
    assert result.final_output == '{"city": "Oslo"}'


def test_numbers_written_as_yaml_numbers_are_expressions() -> None:
    spec = line(("Init", node("WriteMemory1", variables=[{"name": "n", "expression": 0}])))
    run = runner(spec)
    assert run.store.get_all_memory(run.run("x").flow_id) == {"n": 0}

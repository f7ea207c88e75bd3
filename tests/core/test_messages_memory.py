"""Input messages by ThoughtType and MessageType, context-window cuts, and flow memory."""

from __future__ import annotations

import asyncio
import itertools
from uuid import uuid4

import pytest
from support import Trace, build, node_id

from quartermaster_engine import (
    AsyncDispatcher,
    ContextManager,
    ExecutionContext,
    FlowMemory,
    FlowRunner,
    InMemoryPersistence,
    InMemoryStore,
    Message,
    MessageRole,
    NodeResult,
)

SYSTEM, USER, ASSISTANT = MessageRole.SYSTEM, MessageRole.USER, MessageRole.ASSISTANT


def roles(messages: list[Message]) -> list[tuple[MessageRole, str]]:
    return [(m.role, m.content) for m in messages]


def two_into_one(thought: str, message_type: str = "Automatic", **meta: object) -> object:
    """Start -> A, Start -> B; A, B -> Probe (AwaitAll); A and B are INHERIT nodes."""
    return build(
        {
            "Start": "Start1",
            "A": {"type": "step", "thought_type": "InheritThought1"},
            "B": {"type": "step", "thought_type": "InheritThought1"},
            "Probe": {
                "type": "probe",
                "traverse_in": "AwaitAll",
                "thought_type": thought,
                "message_type": message_type,
                "metadata": {"llm_system_instruction": "Be brief.", **meta},
            },
        },
        [("Start", "A"), ("Start", "B"), ("A", "Probe"), ("B", "Probe")],
    )


def probe_messages(graph: object, **runner_kwargs: object) -> list[tuple[MessageRole, str]]:
    seen: list[list[Message]] = []

    def probe(ctx: ExecutionContext) -> str:
        seen.append(ctx.messages)
        return "done"

    trace = Trace().on("step").on("probe", probe)
    FlowRunner(graph, trace.registry, **runner_kwargs).run("question")  # type: ignore[arg-type]
    return roles(seen[0])


def test_new_thought_gets_the_system_instruction_only() -> None:
    assert probe_messages(two_into_one("NewThought1")) == [(SYSTEM, "Be brief.")]


def test_inherit_thought_gets_the_last_message_of_each_predecessor() -> None:
    assert probe_messages(two_into_one("InheritThought1")) == [
        (SYSTEM, "Be brief."),
        (ASSISTANT, "A(question)"),
        (ASSISTANT, "B(question)"),
    ]


def test_continue_thought_gets_the_full_histories() -> None:
    assert probe_messages(two_into_one("ContinueThought1")) == [
        (SYSTEM, "Be brief."),
        (USER, "question"),  # the flow input, as the start node recorded it
        (ASSISTANT, "A(question)"),
        (USER, "question"),
        (ASSISTANT, "B(question)"),
    ]


def test_skip_thought_gets_no_history() -> None:
    assert probe_messages(two_into_one("SkipThought1")) == []


@pytest.mark.parametrize(
    ("message_type", "meta", "expected"),
    [
        ("User", {}, (USER, "question")),
        ("Variable", {"variable_name": "topic"}, (USER, "billing")),
        ("Assistant", {"assistant_message": "Noted."}, (ASSISTANT, "Noted.")),
    ],
)
def test_message_type_adds_the_input_message(
    message_type: str, meta: dict[str, object], expected: tuple[MessageRole, str]
) -> None:
    graph = build(
        {
            "Start": "Start1",
            "Set": "set",
            "Probe": {
                "type": "probe",
                "message_type": message_type,
                "metadata": {"llm_system_instruction": "Be brief.", **meta},
            },
        },
        [("Start", "Set"), ("Set", "Probe")],
    )
    seen: list[list[Message]] = []

    def probe(ctx: ExecutionContext) -> str:
        seen.append(ctx.messages)
        return "done"

    trace = Trace().on("probe", probe)
    trace.on("set", lambda ctx: NodeResult(data={"memory_updates": {"topic": "billing"}}))
    FlowRunner(graph, trace.registry).run("question")
    assert roles(seen[0]) == [(SYSTEM, "Be brief."), expected]


def test_automatic_message_type_adds_nothing() -> None:
    graph = build(
        {"Start": "Start1", "Probe": {"type": "probe", "metadata": {"system_instruction": "S"}}},
        [("Start", "Probe")],
    )
    seen: list[list[Message]] = []
    trace = Trace().on("probe", lambda ctx: seen.append(ctx.messages) or "x")
    FlowRunner(graph, trace.registry).run("q")
    assert roles(seen[0]) == [(SYSTEM, "S")]


def test_context_manager_keeps_system_and_input_message_and_drops_oldest() -> None:
    names = [f"S{i}" for i in range(6)]
    nodes: dict[str, object] = {"Start": "Start1"}
    nodes.update({n: {"type": "step", "thought_type": "ContinueThought1"} for n in names})
    nodes["Probe"] = {
        "type": "probe",
        "thought_type": "ContinueThought1",
        "message_type": "User",
        "metadata": {"llm_system_instruction": "sys"},
    }
    path = ["Start", *names, "Probe"]
    graph = build(nodes, list(itertools.pairwise(path)))
    manager = ContextManager(max_messages=4)
    got = probe_messages(graph, context_manager=manager)
    assert got == [
        (SYSTEM, "sys"),
        (ASSISTANT, "S4(S3(S2(S1(S0(question)))))"),
        (ASSISTANT, "S5(S4(S3(S2(S1(S0(question))))))"),
        (USER, "question"),
    ]


def test_context_manager_token_limit_uses_the_counter() -> None:
    manager = ContextManager(max_tokens=6, token_counter=lambda text: len(text.split()))
    messages = [
        Message(SYSTEM, "one two"),
        Message(USER, "a b c"),
        Message(ASSISTANT, "d e"),
        Message(USER, "f g"),
    ]
    kept = manager.truncate(messages, pinned=messages[3])
    assert roles(kept) == [(SYSTEM, "one two"), (ASSISTANT, "d e"), (USER, "f g")]


def test_parallel_branches_writing_different_keys_keep_every_write() -> None:
    width = 20
    nodes: dict[str, object] = {"Start": "Start1"}
    nodes.update({f"w{i}": "write" for i in range(width)})
    nodes["J"] = {"type": "read", "traverse_in": "AwaitAll"}
    edges = [("Start", f"w{i}") for i in range(width)] + [(f"w{i}", "J") for i in range(width)]

    async def write(ctx: ExecutionContext) -> NodeResult:
        await asyncio.sleep(0.001 * (width - int(ctx.current_node.name[1:])))
        return NodeResult(data={"memory_updates": {ctx.current_node.name: ctx.current_node.name}})

    seen: list[dict[str, object]] = []
    trace = Trace().on("write", write).on("read", lambda ctx: seen.append(ctx.memory) or "ok")
    runner = FlowRunner(build(nodes, edges), trace.registry, dispatcher=AsyncDispatcher())
    result = runner.run("x")
    assert seen[0] == {f"w{i}": f"w{i}" for i in range(width)}
    assert FlowMemory(result.flow_id, runner.store).get_all() == seen[0]


def test_a_later_write_to_the_same_key_wins_in_commit_order() -> None:
    async def write(ctx: ExecutionContext) -> NodeResult:
        delay = {"Slow": 0.05, "Fast": 0.0}[ctx.current_node.name]
        await asyncio.sleep(delay)
        return NodeResult(data={"memory_updates": {"winner": ctx.current_node.name}})

    trace = Trace().on("write", write)
    graph = build(
        {"Start": "Start1", "Slow": "write", "Fast": "write"},
        [("Start", "Slow"), ("Start", "Fast")],
    )
    runner = FlowRunner(graph, trace.registry, dispatcher=AsyncDispatcher())
    result = runner.run("x")
    assert FlowMemory(result.flow_id, runner.store).get("winner") == "Slow"


def test_memory_updates_must_be_a_dict() -> None:
    trace = Trace().on("bad", lambda ctx: NodeResult(data={"memory_updates": ["x"]}))
    graph = build({"Start": "Start1", "Bad": "bad"}, [("Start", "Bad")])
    result = FlowRunner(graph, trace.registry).run("x")
    assert result.error is not None
    assert result.error.endswith("returned memory_updates of type list; expected a dict")


def test_flow_memory_api_of_0_1_5() -> None:
    store = InMemoryStore()
    memory = FlowMemory(flow_id=uuid4(), store=store)
    memory.set("user_name", "Alice")
    memory.set("preferences", {"language": "en"})
    assert memory.get("user_name") == "Alice"
    assert memory.get("missing", "default") == "default"
    assert memory.get_all() == {"user_name": "Alice", "preferences": {"language": "en"}}
    assert memory.list_keys() == ["user_name", "preferences"]
    memory.delete("preferences")
    assert memory.list_keys() == ["user_name"]
    memory.clear()
    assert memory.get_all() == {}


def test_in_memory_store_keeps_a_copy_of_a_saved_value() -> None:
    store, flow = InMemoryStore(), uuid4()
    saved = {"items": [1, 2, 3], "meta": {"seen": False}}
    store.save_memory(flow, "state", saved)
    saved["items"].append(4)
    saved["meta"]["seen"] = True
    assert store.get_memory(flow, "state") == {"items": [1, 2, 3], "meta": {"seen": False}}


def test_in_memory_store_hands_out_copies_of_stored_values() -> None:
    store, flow = InMemoryStore(), uuid4()
    store.save_memory(flow, "items", [1, 2, 3])
    store.save_memory(flow, "meta", {"tags": ["a"]})
    store.get_memory(flow, "items").append(4)
    every = store.get_all_memory(flow)
    every["meta"]["tags"].append("b")
    every["new"] = 1
    assert store.get_all_memory(flow) == {"items": [1, 2, 3], "meta": {"tags": ["a"]}}


def test_memory_a_node_wrote_is_not_changed_through_a_value_read_from_the_store() -> None:
    # 0.1.5's conversation pattern: a node writes a list, the caller reads and edits it.
    trace = Trace().on(
        "write", lambda ctx: NodeResult(data={"memory_updates": {"log": [{"n": "A"}]}})
    )
    seen: list[object] = []
    trace.on("read", lambda ctx: seen.append(ctx.memory["log"]) or "ok")
    graph = build({"Start": "Start1", "A": "write", "R": "read"}, [("Start", "A"), ("A", "R")])
    store = InMemoryStore()
    result = FlowRunner(graph, trace.registry, store=store).run("x")
    read = store.get_memory(result.flow_id, "log")
    read.append({"n": "injected"})
    read[0]["n"] = "changed"
    assert store.get_memory(result.flow_id, "log") == [{"n": "A"}]
    assert seen == [[{"n": "A"}]]


class AsyncStore(InMemoryStore):
    """The same store with ``async def`` memory methods."""

    async def save_memory(self, flow_id, key, value):  # type: ignore[no-untyped-def,override]
        super().save_memory(flow_id, key, value)

    async def get_memory(self, flow_id, key):  # type: ignore[no-untyped-def,override]
        return super().get_memory(flow_id, key)

    async def get_all_memory(self, flow_id):  # type: ignore[no-untyped-def,override]
        return super().get_all_memory(flow_id)


def test_flow_memory_sync_methods_work_over_async_stores_in_and_out_of_a_loop() -> None:
    memory = FlowMemory(uuid4(), AsyncStore())
    memory.set("k", 1)
    assert memory.get("k") == 1

    async def inside() -> tuple[object, object]:
        memory.set("k", 2)  # sync call inside a running loop
        return memory.get("k"), await memory.aget("k")

    assert asyncio.run(inside()) == (2, 2)


@pytest.mark.timeout(60)
def test_flow_memory_sync_methods_inside_an_executor_of_a_flow_run_inside_a_loop() -> None:
    # run() inside a running loop runs the flow on the engine's background loop;
    # sync calls that need a loop from there must not wait on that same loop.
    store = AsyncStore()

    def remember(ctx: ExecutionContext) -> str:
        memory = FlowMemory(ctx.flow_id, store)
        memory.set("seen", ctx.input_text)
        return f"stored {memory.get('seen')}"

    trace = Trace().on("remember", remember)
    graph = build({"Start": "Start1", "A": "remember"}, [("Start", "A")])
    runner = FlowRunner(graph, trace.registry)

    async def cell() -> str:
        return runner.run("x").node_results[node_id("A")].output_text or ""

    assert asyncio.run(cell()) == "stored x"


def test_persistent_memory_api_of_0_1_5() -> None:
    agent = uuid4()
    persistence = InMemoryPersistence()
    persistence.write(agent, "user_pref", "dark_mode")
    assert persistence.read(agent, "user_pref") == "dark_mode"
    persistence.update(agent, "user_pref", "light_mode")
    assert persistence.read(agent, "user_pref") == "light_mode"
    assert [e.value for e in persistence.search(agent, "pref")] == ["light_mode"]
    assert persistence.list_keys(agent) == ["user_pref"]
    persistence.delete(agent, "user_pref")
    assert persistence.read(agent, "user_pref") is None
    assert persistence.list_keys(uuid4()) == []

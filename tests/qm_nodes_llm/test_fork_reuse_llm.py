"""``fork(..., reuse="unchanged")`` with the LLM pack against the scripted
OpenAI-compatible server: the server receives a request only for the LLM nodes
whose inputs changed (on SQLite, Redis and PostgreSQL, each on a file or server
of its own)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, completion
from llm_support import line, node, openai_settings, registry

from qm_nodes_llm import StaticTools
from quartermaster_engine import Engine, FlowResult, FlowStatus
from quartermaster_engine.testing import call

sys.path.insert(0, str(Path(__file__).parents[1] / "qm_store_redis"))
sys.path.insert(0, str(Path(__file__).parents[1] / "qm_store_postgres"))
from qm_pg_support import PostgresServer, unique_schema
from qm_redis_support import RedisServer, unique_prefix

StoreFactory = Callable[[], Any]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    made: list[Any] = []
    if request.param == "sqlite":
        from qm_store_sqlite import SQLiteStore

        def make() -> Any:
            made.append(SQLiteStore(str(tmp_path / "flows.db")))
            return made[-1]
    elif request.param == "postgres":
        from qm_store_postgres import PostgresStore

        pg: PostgresServer = request.getfixturevalue("postgres_server")
        schema = unique_schema()

        def make() -> Any:
            made.append(PostgresStore(pg.url, schema_name=schema))
            return made[-1]
    else:
        from qm_store_redis import RedisStore

        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = unique_prefix()

        def make() -> Any:
            made.append(RedisStore(server.url, key_prefix=prefix))
            return made[-1]

    yield make
    for store in made:
        call(store, "close")


def _llm() -> dict[str, Any]:
    return node("Instruction1", llm_stream=False, llm_system_instruction="Be brief.")


#: Start -> L1 -> L2 -> L3 -> L4 -> End; only L3 reads flow memory ("style", as its
#: input message: MessageType.VARIABLE). The LLM pack's nodes read no other memory.
GRAPH = line(
    ("L1", _llm()),
    ("L2", _llm()),
    (
        "L3",
        node(
            "Instruction1",
            {"message_type": "Variable"},
            llm_stream=False,
            llm_system_instruction="Be brief.",
            variable_name="style",
        ),
    ),
    ("L4", _llm()),
)


def _run(
    server: FakeOpenAI, stores: StoreFactory, fork: dict[str, Any], replies: list[str]
) -> tuple[FlowResult, FlowResult, int]:
    """Run the flow (4 requests), fork it with ``fork`` and ``replies`` scripted, run
    the fork; return both results and how many requests the fork made."""

    async def go() -> tuple[FlowResult, FlowResult, int]:
        reg = registry(openai_settings(server.base_url))
        async with Engine(stores(), registry=reg) as engine:
            server.reply(*(completion(t) for t in ("one", "two", "three", "four")))
            original = await engine.run(GRAPH, "hi")
            assert len(server.requests) == 4
            fid = await engine.fork(original.flow_id, reuse="unchanged", **fork)
            server.reply(*(completion(t) for t in replies))
            forked = await engine.recover(fid)
            return original, forked, len(server.requests) - 4

    return asyncio.run(go())


def test_a_fork_without_edits_makes_no_request(
    openai_server: FakeOpenAI, stores: StoreFactory
) -> None:
    original, forked, requests = _run(openai_server, stores, {"at": 0}, [])
    assert requests == 0
    assert (original.final_output, forked.final_output) == ("four", "four")
    assert forked.status is FlowStatus.COMPLETED


@pytest.mark.parametrize("at", [0, 2, 3])
def test_only_the_node_that_reads_the_edited_memory_asks_again(
    openai_server: FakeOpenAI, stores: StoreFactory, at: int
) -> None:
    """L3 reads "style": it asks again; its answer is the same as before, so L4's
    inputs did not change either: 1 request, wherever before L3 the fork starts
    (checkpoint 0: before Start; 2: after L1; 3: after L2)."""
    _, forked, requests = _run(
        openai_server, stores, {"at": at, "memory": {"style": "terse"}}, ["three"]
    )
    assert requests == 1
    assert openai_server.requests[-1]["messages"][-1]["content"] == "terse"
    assert forked.final_output == "four"


def test_a_changed_answer_changes_the_inputs_of_the_next_node(
    openai_server: FakeOpenAI, stores: StoreFactory
) -> None:
    """L3 answers differently this time: L4's input changed too: 2 requests."""
    _, forked, requests = _run(
        openai_server, stores, {"at": 0, "memory": {"style": "terse"}}, ["THREE", "FOUR"]
    )
    assert requests == 2
    assert openai_server.requests[-1]["messages"][-1]["content"] == "THREE"
    assert forked.final_output == "FOUR"


def test_a_new_input_asks_every_node_again(openai_server: FakeOpenAI, stores: StoreFactory) -> None:
    _, forked, requests = _run(
        openai_server, stores, {"at": 0, "input": "hello"}, ["1", "2", "3", "4"]
    )
    assert requests == 4
    assert forked.final_output == "4"


def test_an_agent_s_llm_and_tool_calls_are_reused_unless_memory_changed(
    openai_server: FakeOpenAI, stores: StoreFactory
) -> None:
    """Agent1 cannot tell which memory its tools read: any memory edit runs it
    again; without edits neither the model nor the tool is called."""
    called: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        called.append((a, b))
        return a + b

    def script() -> None:
        call = {"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}}
        openai_server.reply(completion(None, tool_calls=[call]), completion("It is 5."))

    spec = line(
        ("Agent", node("Agent1", llm_stream=False, program_version_ids=["add"], max_iterations=3))
    )

    async def go() -> tuple[list[int], list[str]]:
        reg = registry(openai_settings(openai_server.base_url), tools=StaticTools([add]))
        counts: list[int] = []
        outputs: list[str] = []
        async with Engine(stores(), registry=reg) as engine:
            script()
            original = await engine.run(spec, "What is 2 + 3?")
            outputs.append(original.final_output)
            counts.append(len(openai_server.requests))
            same = await engine.fork(original.flow_id, at=0, reuse="unchanged")
            outputs.append((await engine.recover(same)).final_output)
            counts.append(len(openai_server.requests))
            script()
            edited = await engine.fork(original.flow_id, at=0, memory={"x": 1}, reuse="unchanged")
            outputs.append((await engine.recover(edited)).final_output)
            counts.append(len(openai_server.requests))
        return counts, outputs

    counts, outputs = asyncio.run(go())
    assert counts == [2, 2, 4]
    assert called == [(2, 3), (2, 3)]
    assert outputs == ["It is 5.", "It is 5.", "It is 5."]

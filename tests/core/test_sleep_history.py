"""History and fork of a flow that slept (docs/time.md, "History and fork"): the
sleeping record is a checkpoint, and a fork's timers count from the fork."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from quartermaster_engine import Engine, FlowEvent, FlowStatus, NodeResult, SimpleNodeRegistry
from quartermaster_engine.stores.memory_store import InMemoryStore
from quartermaster_engine.stores.sqlite_store import SQLiteStore
from quartermaster_engine.testing import TestClock
from quartermaster_graph import GraphBuilder, GraphSpec

START = TestClock().now()
REG = SimpleNodeRegistry({"up": lambda ctx: NodeResult(output_text=ctx.input_text.upper() + "!")})


def nap_graph(**sleep: str) -> GraphSpec:
    b = GraphBuilder("Nap").start().node("up", "A")
    return (
        b.sleep("nap", sleep.get("duration"), until=sleep.get("until"))
        .node("up", "B")
        .end()
        .build()
    )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_history_and_forks_of_a_flow_that_slept(kind: str, tmp_path: Path) -> None:
    clock = TestClock()  # skips: each sleep ends at once, the clock shows how long

    async def main() -> None:
        store = InMemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "flows.db")
        async with Engine(store=store, registry=REG, clock=clock) as engine:
            done = await engine.run(nap_graph(duration="1h"), "hi")
            assert (done.status, done.final_output) == (FlowStatus.COMPLETED, "HI!!")
            assert clock.now() == START + 3600
            history = await engine.history(done.flow_id)
            assert [(c.seq, c.node_name, c.outcome) for c in history] == [
                (1, "Start", "finished"),
                (2, "A", "finished"),
                (3, "nap", "sleeping"),
                (4, "nap", "finished"),
                (5, "B", "finished"),
                (6, "End", "finished"),
            ]
            slept: dict[int, float] = {}
            for at in range(len(history) + 1):
                began = clock.now()
                seen: list[FlowEvent] = []
                fork = await engine.fork(done.flow_id, at=at)
                result = await engine.recover(fork, on_event=seen.append)
                assert (result.status, result.final_output) == (FlowStatus.COMPLETED, "HI!!")
                slept[at] = clock.now() - began
                fired = [e for e in seen if e.type == "TimerFired"]
                if at in (0, 1, 2, 3):  # the sleep is still ahead, or under way
                    assert [e.wake_at for e in fired] == [began + 3600]  # type: ignore[attr-defined]
                else:
                    assert fired == []
            # Before the sleep, or at it: a whole hour from the fork; after: none.
            assert slept == {0: 3600, 1: 3600, 2: 3600, 3: 3600, 4: 0, 5: 0, 6: 0}

    asyncio.run(main())


def test_a_fork_of_a_sleep_until_a_passed_time_does_not_wait(tmp_path: Path) -> None:
    clock = TestClock()
    until = "2030-01-02T00:00:00+00:00"

    async def main() -> None:
        async with Engine(
            store=SQLiteStore(tmp_path / "f.db"), registry=REG, clock=clock
        ) as engine:
            done = await engine.run(nap_graph(until=until), "hi")
            assert clock.now() == START + 86400
            fork = await engine.fork(done.flow_id, at=3)  # at the sleeping record
            result = await engine.recover(fork)
            assert result.final_output == "HI!!"
            assert clock.now() == START + 86400  # already past: it does not wait again

    asyncio.run(main())

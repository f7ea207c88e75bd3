"""The in-process slots of an engine whose store keeps none (the memory store) keep
the same contract as a store's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from quartermaster_engine.clock import Clock
from quartermaster_engine.runner.key_limits import KeyLimits, Rule
from quartermaster_engine.runner.limit_waits import LimitWait, giving_back
from quartermaster_engine.runner.local_slots import LocalSlots
from quartermaster_engine.stores.memory_store import InMemoryStore
from quartermaster_engine.stores.records import WindowAsk
from quartermaster_engine.testing.slots_contract import SlotsContract


class TestLocalSlots(SlotsContract):
    @pytest.fixture
    def store(self) -> LocalSlots:
        return LocalSlots()

    @pytest.fixture
    def make_store(self, store: LocalSlots) -> Callable[[], Any]:
        return lambda: store  # one process: every caller shares its table


def test_patterns_match_keys_after_exact_ones() -> None:
    limits = KeyLimits({"llm:openai:gpt-4o": 8, "llm:openai:*": 3, "tenant:*": 1}, None, 30.0)
    assert isinstance(limits.slots, LocalSlots)
    assert not limits.shared
    assert limits.limit_of("llm:openai:gpt-4o") == Rule(8)
    assert limits.limit_of("llm:openai:gpt-4o-mini") == Rule(3)
    assert limits.limit_of("tenant:acme") == Rule(1)
    assert limits.limit_of("llm:anthropic:claude") is None
    assert KeyLimits.of({}, InMemoryStore(), 30.0) is None


def test_a_nodes_metadata_limit_keys_limit_its_activations() -> None:
    import asyncio

    from quartermaster_engine import Engine, NodeResult, SimpleNodeRegistry
    from quartermaster_engine.testing.graphs import build_graph

    running = {"now": 0, "most": 0}

    async def work(ctx: Any) -> NodeResult:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        await asyncio.sleep(0.01)
        running["now"] -= 1
        return NodeResult(output_text="done")

    def graph(metadata: dict[str, Any]) -> Any:
        nodes = {"Start": "Start1", "W": {"type": "work", "metadata": metadata}, "End": "End1"}
        return build_graph(nodes, [("Start", "W"), ("W", "End")])

    async def run(metadata: dict[str, Any]) -> int:
        running["most"] = 0
        registry = SimpleNodeRegistry({"work": work})
        async with Engine(registry=registry, key_limits={"tenant:*": 2}) as engine:
            done = await asyncio.gather(*(engine.run(graph(metadata), "x") for _ in range(8)))
        assert [r.status.value for r in done] == ["completed"] * 8
        return running["most"]

    assert asyncio.run(run({"limit_keys": ["tenant:acme"]})) == 2
    assert asyncio.run(run({"limit_keys": ["other:acme"]})) == 8  # no limit matches
    assert asyncio.run(run({})) == 8


def test_waiting_activations_get_the_slot_in_the_order_they_came() -> None:
    """Six activations queue behind a held slot, one after the other; each asks again
    on its own (the nearer the front, the sooner), yet they get it in their order."""
    import asyncio

    limits = KeyLimits({"k": 1}, None, 30.0)
    keys = (("k", Rule(1)),)
    order: list[str] = []

    async def main() -> None:
        gate = asyncio.Event()

        async def holder() -> None:
            async with limits.held(keys):
                await gate.wait()

        async def waiter(name: str) -> None:
            async with limits.held(keys):
                order.append(name)
                await asyncio.sleep(0.002)

        first = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        waiting = []
        for name in "abcdef":
            waiting.append(asyncio.create_task(waiter(name)))
            await asyncio.sleep(0.02)  # queued before the next one comes
        assert await limits.waiting() == {"k": 6}
        gate.set()
        await asyncio.gather(first, *waiting)
        assert await limits.waiting() == {}

    asyncio.run(main())
    assert order == list("abcdef")


def test_under_giving_back_a_full_key_raises_limit_wait_and_keeps_the_place() -> None:
    """A Celery worker's activation asks once: a refused one raises `LimitWait` (its
    countdown 0.1 s per place) and stays in the line under its task's id."""
    import asyncio

    limits = KeyLimits({"k": 1}, None, 30.0)
    keys = (("k", Rule(1)),)

    async def main() -> None:
        async with limits.held(keys):
            for task, place in (("t1", 1), ("t2", 2), ("t1", 1)):
                with giving_back(task, again=False), pytest.raises(LimitWait) as wait:
                    async with limits.held(keys):
                        pass
                assert wait.value.key == "k"
                assert wait.value.seconds == pytest.approx(0.1 * place)
            assert await limits.waiting() == {"k": 2}
        with giving_back("t2", again=True), pytest.raises(LimitWait):
            async with limits.held(keys):
                pass  # t1 is ahead of it
        with giving_back("t1", again=True):
            async with limits.held(keys):
                assert await limits.in_use() == {"k": 1}
                assert await limits.waiting() == {"k": 1}

    asyncio.run(main())


def test_a_given_back_task_counts_its_start_once_it_has_its_slot() -> None:
    """Under giving_back a key's slot is taken before its window is asked: a task
    given back for the slot counts no start each time it comes back."""
    import asyncio
    import time

    limits = KeyLimits({"k": Rule(max_in_flight=1, max_requests=10, per=60.0)}, None, 30.0)
    keys = (("k", limits.limits["k"]),)

    async def main() -> None:
        async with limits.held(keys):  # waits in the task: its window first
            for _ in range(3):
                with giving_back("t1", again=True), pytest.raises(LimitWait):
                    async with limits.held(keys):
                        pass
            assert limits.rates.requests_in_window("k", 60.0, time.time()) == 1
        with giving_back("t1", again=True):
            async with limits.held(keys):
                assert limits.rates.requests_in_window("k", 60.0, time.time()) == 2
        assert await limits.waiting() == {}

    asyncio.run(main())


def _one_start_a_minute(clock: Clock) -> tuple[KeyLimits, tuple[tuple[str, Rule]]]:
    """In-process limits of key "k": one start a minute on ``clock``, a 30 s ttl."""
    rule = Rule(max_requests=1, per=60.0)
    return KeyLimits({"k": rule}, None, 30.0, clock), (("k", rule),)


def test_waiting_activations_pass_a_full_window_in_the_order_they_came() -> None:
    """Six activations find a window of one start a minute full, one after the other;
    each time the clock lets one more start, the first in the window's line starts,
    not whichever asks first."""
    import asyncio

    from quartermaster_engine.testing import TestClock

    clock = TestClock(skip=False)
    limits, keys = _one_start_a_minute(clock)
    order: list[str] = []

    async def main() -> None:
        async def waiter(name: str) -> None:
            async with limits.held(keys):
                order.append(name)

        await waiter("h")  # the window's one start
        waiting = []
        for name in "abcdef":
            waiting.append(asyncio.create_task(waiter(name)))
            await asyncio.sleep(0.02)  # queued before the next one comes
        assert await limits.waiting() == {"k": 6}
        for count in range(2, 8):
            clock.advance(61)  # room for one more start
            while len(order) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)  # nobody else starts in this window
            assert len(order) == count
        await asyncio.gather(*waiting)
        assert await limits.waiting() == {}

    asyncio.run(main())
    assert order == list("habcdef")


def test_under_giving_back_a_full_window_keeps_the_tasks_place() -> None:
    """A Celery worker's activation refused by a window raises `LimitWait` and stays in
    the window's line under its task's id: a task that comes back behind another waits
    (0.1 s per place) even when the window has room again; the first one starts."""
    import asyncio

    from quartermaster_engine.testing import TestClock

    clock = TestClock(skip=False)
    limits, keys = _one_start_a_minute(clock)

    async def main() -> None:
        async with limits.held(keys):
            pass
        # the first in line waits for the window (at most a third of the ttl)
        for task, seconds in (("t1", 10.0), ("t2", 0.2)):
            with giving_back(task, again=False), pytest.raises(LimitWait) as wait:
                async with limits.held(keys):
                    pass
            assert wait.value.key == "k"
            assert wait.value.seconds == pytest.approx(seconds)
        assert await limits.waiting() == {"k": 2}
        clock.advance(61)
        with giving_back("t2", again=True), pytest.raises(LimitWait) as wait:
            async with limits.held(keys):
                pass  # t1 is ahead of it
        assert wait.value.seconds == pytest.approx(0.2)
        with giving_back("t1", again=True):
            async with limits.held(keys):
                assert await limits.waiting() == {"k": 1}
        assert await limits.waiting() == {"k": 1}
        with giving_back("t2", again=True), pytest.raises(LimitWait) as wait:
            async with limits.held(keys):
                pass  # first now, but t1 took the window's start
        assert wait.value.seconds == pytest.approx(10.0)

    asyncio.run(main())


class _CountingSlots(LocalSlots):
    """`LocalSlots` as a store, writing down each call the limits make."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def take_request_in_line(self, ask: WindowAsk) -> tuple[int, float]:
        self.calls.append(f"take_request_in_line {ask.line}")
        return super().take_request_in_line(ask)

    def take_slot(self, key: str, holder: str, limit: int, now: float, expires_at: float) -> int:
        self.calls.append(f"take_slot {key} {limit}")
        return super().take_slot(key, holder, limit, now, expires_at)

    def unmark_waiting(self, key: str, waiter: str) -> None:
        self.calls.append(f"unmark_waiting {key}")
        super().unmark_waiting(key, waiter)


def test_a_window_with_room_costs_one_store_call_and_a_wait_its_line() -> None:
    """An activation whose window has room asks only the window; one that waits is
    queued in the window line by the same call, asks again (the window, in its line's
    order) each third of the ttl, and leaves the line as it starts: no more calls."""
    import asyncio

    from quartermaster_engine.testing import TestClock

    store, clock = _CountingSlots(), TestClock()  # skips the window's wait
    rule = Rule(max_requests=1, per=60.0)
    limits = KeyLimits({"k": rule}, store, 30.0, clock)
    assert limits.windows is store

    async def main() -> None:
        async with limits.held((("k", rule),)):
            assert store.calls == ["take_request_in_line k (window)"]
        store.calls.clear()
        async with limits.held((("k", rule),)):
            pass
        assert await limits.waiting() == {}

    asyncio.run(main())
    # Refused for 60 s: queued first in line; asks every third of the ttl (10 s of
    # the clock) until it starts at 60 s.
    assert store.calls == ["take_request_in_line k (window)"] * 7


def test_a_newcomer_does_not_start_ahead_of_the_window_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Room frees in a full window while its first waiter still sleeps (its jitter): a
    newcomer asking in that moment joins the line behind it instead of taking the
    room, and the waiter starts first."""
    import asyncio
    import random

    from quartermaster_engine.testing import TestClock

    monkeypatch.setattr(random, "random", lambda: 0.5)  # a jitter of 5 ms of the clock
    clock = TestClock(skip=False)
    limits, keys = _one_start_a_minute(clock)
    order: list[str] = []

    async def main() -> None:
        async def run(name: str) -> None:
            async with limits.held(keys):
                order.append(name)

        start = clock.now()
        await run("h")  # the window's one start
        first = asyncio.create_task(run("a"))
        await asyncio.sleep(0.05)
        clock.set(start + 59.999)  # "a" asks: room in 1 ms; it sleeps until 60.006
        await asyncio.sleep(0.05)
        clock.set(start + 60)  # room frees; "a" still sleeps
        newcomer = asyncio.create_task(run("b"))
        await asyncio.sleep(0.05)
        assert order == ["h"]
        assert await limits.waiting() == {"k": 2}
        clock.advance(0.01)
        await first
        assert order == ["h", "a"]
        clock.advance(61)
        await newcomer

    asyncio.run(main())
    assert order == ["h", "a", "b"]


def test_a_freed_slot_wakes_the_waiter_of_this_process_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A waiter sleeping between asks (1 s per place here) is woken when its process
    gives the key's slot back, and starts at once instead of at its next ask."""
    import asyncio
    import time

    from quartermaster_engine.runner import key_limits

    monkeypatch.setattr(key_limits, "_FIRST_WAIT", 1.0)
    monkeypatch.setattr(key_limits, "_MAX_WAIT", 5.0)
    rule = Rule(max_in_flight=1)
    limits = KeyLimits({"k": rule}, None, 30.0)
    keys = (("k", rule),)

    async def main() -> float:
        holding, started = asyncio.Event(), 0.0

        async def waiter() -> None:
            nonlocal started
            await holding.wait()
            async with limits.held(keys):
                started = time.monotonic()

        task = asyncio.create_task(waiter())
        async with limits.held(keys):
            holding.set()
            await asyncio.sleep(0.05)  # the waiter was refused; it sleeps 0.5 to 1.5 s
            assert await limits.waiting() == {"k": 1}
        freed = time.monotonic()
        await task
        return started - freed

    assert asyncio.run(main()) < 0.2

"""ThreadDispatcher on its own: construction, calls, cancellation and shutdown."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from typing import Any

import pytest
from thread_support import WORKER_PREFIX, wait_until, worker_threads

from qm_dispatch_thread import DispatcherShutdownError, ThreadDispatcher
from quartermaster_engine import GraphNode, NodeType, TaskDispatcher

NODE = GraphNode(type="plain", name="N")


def test_contract_attributes() -> None:
    dispatcher = ThreadDispatcher(max_workers=3)
    try:
        assert isinstance(dispatcher, TaskDispatcher)
        assert dispatcher.concurrent is True
        assert dispatcher.offloads_blocking is True
        assert dispatcher.max_concurrency is None
        assert dispatcher.max_workers == 3
        assert dispatcher.type_limits == {}
        assert dispatcher.closed is False
        assert repr(dispatcher) == "ThreadDispatcher(max_workers=3)"
    finally:
        dispatcher.shutdown()
    assert dispatcher.closed is True
    assert repr(dispatcher) == "ThreadDispatcher(max_workers=3, closed)"


def test_default_max_workers_is_the_thread_pool_default() -> None:
    dispatcher = ThreadDispatcher()
    assert dispatcher.max_workers == min(32, (os.cpu_count() or 1) + 4)
    dispatcher.shutdown()


def test_type_limits_take_type_names_or_node_types() -> None:
    dispatcher = ThreadDispatcher(4, {NodeType.INSTRUCTION: 2, "acme.Scraper": 1})
    assert dispatcher.type_limits == {"Instruction1": 2, "acme.Scraper": 1}
    assert repr(dispatcher) == (
        "ThreadDispatcher(max_workers=4, type_limits={'Instruction1': 2, 'acme.Scraper': 1})"
    )
    dispatcher.shutdown()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_workers": 0}, "max_workers must be an integer of at least 1, got 0"),
        ({"max_workers": 2.5}, "max_workers must be an integer of at least 1, got 2.5"),
        ({"max_workers": True}, "max_workers must be an integer of at least 1, got True"),
        (
            {"type_limits": {"slow": 0}},
            "type_limits['slow'] must be an integer of at least 1, got 0",
        ),
        ({"type_limits": {"": 1}}, "type_limits keys must be node type names, got ''"),
        ({"type_limits": {3: 1}}, "type_limits keys must be node type names, got 3"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[") + "$"):
        ThreadDispatcher(**kwargs)


def test_threads_start_on_demand_and_are_named() -> None:
    dispatcher = ThreadDispatcher(max_workers=4, thread_name_prefix="qm-ondemand")
    assert worker_threads("qm-ondemand") == []

    async def main() -> list[str]:
        return [
            await dispatcher.run_blocking(lambda: threading.current_thread().name, NODE)
            for _ in range(3)
        ]

    names = asyncio.run(main())
    # One call at a time: the first worker does all the work.
    assert names == ["qm-ondemand_0"] * 3
    dispatcher.shutdown()
    assert worker_threads("qm-ondemand") == []


def test_results_and_errors_come_back_unchanged() -> None:
    dispatcher = ThreadDispatcher(max_workers=2)
    marker = object()

    def fail() -> None:
        raise KeyError("missing")

    def stop_iteration() -> None:
        raise StopIteration("done")

    async def main() -> None:
        assert await dispatcher.run_blocking(lambda: marker, NODE) is marker
        with pytest.raises(KeyError, match="missing"):
            await dispatcher.run_blocking(fail, NODE)
        # asyncio futures cannot carry StopIteration: it arrives as a RuntimeError.
        with pytest.raises(
            RuntimeError,
            match=r"^a blocking executor raised StopIteration: StopIteration\('done'\)$",
        ):
            await dispatcher.run_blocking(stop_iteration, NODE)

    asyncio.run(main())
    dispatcher.shutdown()


def test_calls_never_run_on_the_loop_thread_and_never_block_it() -> None:
    dispatcher = ThreadDispatcher(max_workers=2)
    release = threading.Event()
    ticks: list[int] = []

    async def ticker() -> None:
        while not release.is_set():
            ticks.append(1)
            await asyncio.sleep(0.001)

    def blocking() -> str:
        release.wait(5)
        return threading.current_thread().name

    async def main() -> str:
        tick_task = asyncio.ensure_future(ticker())
        call = asyncio.ensure_future(dispatcher.run_blocking(blocking, NODE))
        assert await asyncio.to_thread(wait_until, lambda: len(ticks) >= 20)
        release.set()
        name = await call
        await tick_task
        return name

    assert asyncio.run(main()).startswith(WORKER_PREFIX)
    dispatcher.shutdown()


def test_a_cancelled_call_that_has_not_started_never_runs() -> None:
    dispatcher = ThreadDispatcher(max_workers=1)
    gate = threading.Event()
    ran: list[str] = []

    def first() -> str:
        gate.wait(5)
        ran.append("first")
        return "first"

    def second() -> str:
        ran.append("second")
        return "second"

    async def main() -> str:
        running = asyncio.ensure_future(dispatcher.run_blocking(first, NODE))
        queued = asyncio.ensure_future(dispatcher.run_blocking(second, NODE))
        await asyncio.sleep(0.05)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.set()
        return await running

    assert asyncio.run(main()) == "first"
    dispatcher.shutdown()  # waits for the queue: the dropped call would run by now
    assert ran == ["first"]


def test_a_cancelled_call_that_has_started_finishes_in_its_thread() -> None:
    dispatcher = ThreadDispatcher(max_workers=1)
    started = threading.Event()
    gate = threading.Event()
    finished: list[str] = []

    def slow() -> str:
        started.set()
        gate.wait(5)
        finished.append("slow")
        return "slow"

    async def main() -> None:
        call = asyncio.ensure_future(dispatcher.run_blocking(slow, NODE))
        assert await asyncio.to_thread(started.wait, 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert finished == []
        gate.set()

    asyncio.run(main())
    dispatcher.shutdown()
    assert finished == ["slow"]


def test_one_dispatcher_serves_several_event_loops_at_once() -> None:
    dispatcher = ThreadDispatcher(max_workers=4)
    results: dict[int, list[int]] = {}

    def loop_thread(n: int) -> None:
        async def main() -> list[int]:
            calls = [dispatcher.run_blocking(lambda i=i: n * 100 + i, NODE) for i in range(50)]
            return list(await asyncio.gather(*calls))

        results[n] = asyncio.run(main())

    threads = [threading.Thread(target=loop_thread, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    dispatcher.shutdown()
    assert results == {n: [n * 100 + i for i in range(50)] for n in range(4)}


def test_shutdown_with_wait_lets_running_and_queued_calls_finish() -> None:
    dispatcher = ThreadDispatcher(max_workers=1, thread_name_prefix="qm-waited")
    finished: list[int] = []
    when_shutdown_returned: list[list[int]] = []

    def job(n: int) -> int:
        time.sleep(0.03)
        finished.append(n)
        return n

    async def main() -> list[int]:
        calls = [
            asyncio.ensure_future(dispatcher.run_blocking(lambda n=n: job(n), NODE))
            for n in range(3)
        ]
        await asyncio.sleep(0.01)  # the first call is running, two are queued

        def shut() -> None:
            dispatcher.shutdown(wait=True)
            when_shutdown_returned.append(list(finished))

        await asyncio.to_thread(shut)
        return list(await asyncio.gather(*calls))

    assert asyncio.run(main()) == [0, 1, 2]
    assert when_shutdown_returned == [[0, 1, 2]]
    assert worker_threads("qm-waited") == []


def test_shutdown_without_wait_drops_queued_calls_and_returns_at_once() -> None:
    dispatcher = ThreadDispatcher(max_workers=1, thread_name_prefix="qm-nowait")
    started = threading.Event()
    gate = threading.Event()
    ran: list[str] = []

    def running() -> str:
        started.set()
        gate.wait(5)
        ran.append("running")
        return "finished anyway"

    def queued() -> str:
        ran.append("queued")
        return "queued"

    async def main() -> list[Any]:
        calls = [asyncio.ensure_future(dispatcher.run_blocking(running, NODE))]
        calls += [asyncio.ensure_future(dispatcher.run_blocking(queued, NODE)) for _ in range(2)]
        assert await asyncio.to_thread(started.wait, 5)
        dispatcher.shutdown(wait=False)
        assert ran == []  # returned while the running call still runs
        gate.set()
        return list(await asyncio.gather(*calls, return_exceptions=True))

    outcomes = asyncio.run(main())
    assert outcomes[0] == "finished anyway"
    for outcome in outcomes[1:]:
        assert isinstance(outcome, DispatcherShutdownError)
        assert str(outcome) == (
            "the thread dispatcher was shut down (wait=False) before the call started"
        )
    dispatcher.shutdown(wait=True)  # a second call joins the threads
    assert ran == ["running"]
    assert worker_threads("qm-nowait") == []


def test_calls_after_shutdown_are_refused() -> None:
    dispatcher = ThreadDispatcher(max_workers=1)
    dispatcher.shutdown()
    dispatcher.shutdown(wait=False)

    async def main() -> None:
        await dispatcher.run_blocking(lambda: None, NODE)

    with pytest.raises(
        DispatcherShutdownError,
        match=r"^the thread dispatcher is shut down; create a new ThreadDispatcher$",
    ):
        asyncio.run(main())


def test_shutdown_from_inside_a_call_does_not_deadlock() -> None:
    dispatcher = ThreadDispatcher(max_workers=2, thread_name_prefix="qm-inside")

    async def main() -> str:
        return await dispatcher.run_blocking(lambda: dispatcher.shutdown() or "done", NODE)

    assert asyncio.run(main()) == "done"
    assert dispatcher.closed is True
    assert wait_until(lambda: worker_threads("qm-inside") == [])


def test_a_dispatcher_dropped_without_shutdown_releases_its_threads() -> None:
    dispatcher = ThreadDispatcher(max_workers=3, thread_name_prefix="qm-dropped")
    asyncio.run(_three_calls(dispatcher))
    threads = worker_threads("qm-dropped")
    assert len(threads) == 3
    del dispatcher
    gc.collect()
    for thread in threads:
        thread.join(5)
    assert worker_threads("qm-dropped") == []


async def _three_calls(dispatcher: ThreadDispatcher) -> None:
    await asyncio.gather(
        *(dispatcher.run_blocking(lambda: time.sleep(0.01), NODE) for _ in range(3))
    )


def test_a_call_whose_loop_has_closed_does_not_kill_its_worker() -> None:
    dispatcher = ThreadDispatcher(max_workers=1)
    gate = threading.Event()

    async def abandon() -> None:
        # asyncio.run cancels the pending call and closes the loop while the call runs.
        call = asyncio.ensure_future(dispatcher.run_blocking(lambda: gate.wait(5), NODE))
        await asyncio.sleep(0.02)
        assert not call.done()

    asyncio.run(abandon())
    gate.set()

    async def again() -> str:
        return await dispatcher.run_blocking(lambda: threading.current_thread().name, NODE)

    assert asyncio.run(again()) == f"{WORKER_PREFIX}0"
    dispatcher.shutdown()


def test_0_1_5_dispatch_and_wait_all_run_calls_in_the_pool() -> None:
    from uuid import UUID

    dispatcher = ThreadDispatcher(max_workers=2, thread_name_prefix="legacy")
    ran: list[tuple[int, str]] = []
    lock = threading.Lock()

    def execute_fn(flow_id: UUID, node_id: UUID) -> None:
        with lock:
            ran.append((node_id.int, threading.current_thread().name))

    for i in range(3):
        dispatcher.dispatch(UUID(int=99), UUID(int=i), execute_fn)
    dispatcher.wait_all()
    assert sorted(n for n, _ in ran) == [0, 1, 2]
    assert all(name.startswith("legacy-dispatch") for _, name in ran)
    dispatcher.shutdown()
    with pytest.raises(DispatcherShutdownError, match=r"^the thread dispatcher is shut down$"):
        dispatcher.dispatch(UUID(int=99), UUID(int=3), execute_fn)

"""Concurrency limits per key across processes: real worker processes on one store
(SQLite, Redis, PostgreSQL) send LLM calls to the LLM pack's fake OpenAI-compatible
server, which counts the requests it is answering at once; on the memory store the
limit holds within the process. A holder SIGKILLed mid-call frees its slot within
the lease time."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Reply, completion
from limit_support import config, finish, report, start
from limit_worker import llm_chain

from quartermaster_engine import Engine
from quartermaster_engine.runner.local_slots import LocalSlots
from quartermaster_engine.stores.records import WindowAsk


def slow_answers(server: FakeOpenAI) -> None:
    server.default = dataclasses.replace(completion("ok", model="gpt-4o-mini"), delay=0.05)


@pytest.mark.slow
def test_four_processes_never_send_more_than_max_in_flight(
    shared_store: dict[str, Any], openai_server: FakeOpenAI
) -> None:
    slow_answers(openai_server)
    workers = [
        start(config=config(shared_store, openai_server, 3), flows=8, nodes=2) for _ in range(4)
    ]
    results = [finish(w) for w in workers]
    assert results == [[["completed", None]] * 8] * 4
    assert len(openai_server.requests) == 64
    assert openai_server.most_in_flight == 3


def _run_here(server: FakeOpenAI, limit: int | None) -> list[str]:
    async def go() -> list[str]:
        async with Engine.from_config(config({"name": "memory"}, server, limit)) as engine:
            graph = llm_chain(2)
            done = await asyncio.gather(*(engine.run(graph, f"q{i}") for i in range(12)))
        return [r.status.value for r in done]

    return asyncio.run(go())


def test_on_the_memory_store_the_limit_holds_within_the_process(
    openai_server: FakeOpenAI,
) -> None:
    slow_answers(openai_server)
    assert _run_here(openai_server, None) == ["completed"] * 12
    unlimited = openai_server.most_in_flight
    assert unlimited > 3  # without a limit the 12 flows call at once
    openai_server.most_in_flight = 0
    assert _run_here(openai_server, 3) == ["completed"] * 12
    assert openai_server.most_in_flight == 3
    assert len(openai_server.requests) == 48


def _wait(what: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
def test_a_killed_holder_frees_its_slot_within_the_lease_time(
    shared_store: dict[str, Any], openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    lease = 2.0
    hold = threading.Event()
    openai_server.reply(Reply(body=completion("held").body, gate=hold))
    slow_answers(openai_server)
    cfg = config(shared_store, openai_server, 1)
    try:
        holder = start(config=cfg, flows=1, nodes=1, lease=lease)
        _wait(lambda: len(openai_server.requests) == 1)  # the holder's call is under way
        ready = tmp_path / "ready"
        waiter = start(config=cfg, flows=1, nodes=1, lease=lease, ready=str(ready))
        _wait(ready.exists)
        time.sleep(0.5)
        assert len(openai_server.requests) == 1  # the waiter waits for the one slot
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        holder.wait(10)
        _wait(lambda: len(openai_server.requests) == 2)
        freed_after = time.monotonic() - killed
        assert finish(waiter) == [["completed", None]]
    finally:
        hold.set()
    assert freed_after <= lease + 1.0, freed_after


def limited_arrivals(server: FakeOpenAI) -> list[float]:
    """When the requests for gpt-4o-mini arrived (not the warm-up calls)."""
    pairs = zip(server.requests, server.arrivals, strict=True)
    return [at for body, at in pairs if body.get("model") == "gpt-4o-mini"]


def most_in_any_window(arrivals: list[float], width: float) -> int:
    return max(sum(1 for t in arrivals if start <= t < start + width) for start in arrivals)


@pytest.mark.slow
def test_processes_start_at_most_max_requests_per_window(
    shared_store: dict[str, Any], openai_server: FakeOpenAI
) -> None:
    """2 processes x 6 flows x 2 LLM nodes with ``max_requests = 6`` per second: the
    shared store lets at most 6 starts through in any second, counted over both
    processes (each records when the store let its starts through: the server's
    arrival times would add the processes' scheduling under load), and all 24 run."""
    openai_server.default = completion("ok", model="gpt-4o-mini")
    cfg = config(shared_store, openai_server, None, max_requests=6, per="1s")
    cfg["limits"] = {"llm:openai:gpt-4o-mini": cfg["limits"]["llm:openai:*"]}
    workers = [start(config=cfg, flows=6, nodes=2, warm=True) for _ in range(2)]
    reports = [report(w) for w in workers]
    assert [r["results"] for r in reports] == [[["completed", None]] * 6] * 2
    assert len(limited_arrivals(openai_server)) == 24
    starts = sorted(t for r in reports for t in r["starts"])
    assert len(starts) == 24
    assert most_in_any_window(starts, 1.0) == 6
    assert starts[-1] - starts[0] >= 3.0 - 1e-6  # 24 starts at 6 a second: 3 s at least


class RecordingStarts(LocalSlots):
    """In-process starts per window, recording when each start was let through."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[float] = []

    def take_request_in_line(self, ask: WindowAsk) -> tuple[int, float]:
        place, wait = super().take_request_in_line(ask)
        if place == 0:
            self.started.append(ask.now)
        return place, wait


def test_on_the_memory_store_starts_per_window_hold_within_the_process(
    openai_server: FakeOpenAI,
) -> None:
    """In one process the clock of the starts is the engine's own: no start is let
    through while 5 others are in the last second (the server's arrivals lag
    behind them by the event loop's load, so they are only counted here)."""
    openai_server.default = completion("ok", model="gpt-4o-mini")
    recording = RecordingStarts()

    async def go() -> list[str]:
        cfg = config({"name": "memory"}, openai_server, None, max_requests=5, per="1s")
        async with Engine.from_config(cfg) as engine:
            assert engine.key_limits is not None
            engine.key_limits.windows = recording
            done = await asyncio.gather(*(engine.run(llm_chain(1), f"q{i}") for i in range(12)))
        return [r.status.value for r in done]

    assert asyncio.run(go()) == ["completed"] * 12
    assert len(openai_server.requests) == 12
    started = recording.started
    assert len(started) == 12
    assert most_in_any_window(started, 1.0) == 5
    assert started[-1] - started[0] >= 2.0  # 12 starts at 5 a second

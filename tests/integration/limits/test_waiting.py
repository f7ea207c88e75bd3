"""The activations waiting for a limit key (for a slot, or for room in its window of
starts) are recorded in the shared store, so ``qm limits`` (a real ``qm`` process)
counts those of every worker process; a waiter's mark lapses with its lease when
its process is killed. On the memory store each process counts its own."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, completion
from limit_support import config, finish, qm, start
from limit_worker import llm_chain

from quartermaster_engine import Engine

KEY = "llm:openai:gpt-4o-mini"


def write_config(folder: Path, store: dict[str, Any], table: str) -> None:
    """``qm.toml`` for ``qm limits``: the workers' store and limits table."""
    lines = ["[store]", *(f"{k} = {json.dumps(v)}" for k, v in store.items())]
    (folder / "qm.toml").write_text("\n".join([*lines, "[limits.'llm:openai:*']", table, ""]))


def limits(folder: Path) -> list[dict[str, Any]]:
    shown = qm(folder, "limits", "--json")
    assert shown.returncode == 0, shown.stderr
    rows: list[dict[str, Any]] = json.loads(shown.stdout)["keys"]
    return rows


def row_when(
    folder: Path, ready: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    """``KEY``'s row once ``ready`` holds for it, asking ``qm limits`` again and again."""
    deadline = time.monotonic() + timeout
    while True:
        row = next((r for r in limits(folder) if r["key"] == KEY), None)
        if row is not None and ready(row):
            return row
        assert time.monotonic() < deadline, f"timed out; last row {row}"
        time.sleep(0.1)


def table_row(limit: int | None, max_requests: int | None, per: float | None) -> dict[str, Any]:
    """The pattern's own row once no key under it holds or waits."""
    return {
        "key": "llm:openai:*",
        "limit": limit,
        "max_requests": max_requests,
        "max_tokens": None,
        "per": per,
        "table": "llm:openai:*",
        "in_flight": 0,
        "waiting": 0,
        "started": None,
        "tokens": None,
    }


@pytest.mark.slow
def test_qm_limits_counts_the_activations_waiting_for_a_slot(
    shared_store: dict[str, Any], openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    """2 processes x 2 flows, one LLM call each, ``max_in_flight = 1``: while the
    server holds the first call, ``qm limits`` sees 1 in flight and 3 waiting."""
    hold = threading.Event()
    openai_server.default = dataclasses.replace(completion("ok", model="gpt-4o-mini"), gate=hold)
    write_config(tmp_path, shared_store, "max_in_flight = 1")
    cfg = config(shared_store, openai_server, 1)
    workers = []
    try:
        workers = [start(config=cfg, flows=2, nodes=1) for _ in range(2)]
        row = row_when(tmp_path, lambda r: r["waiting"] == 3)
        assert row == {
            "key": KEY,
            "limit": 1,
            "max_requests": None,
            "max_tokens": None,
            "per": None,
            "table": "llm:openai:*",
            "in_flight": 1,
            "waiting": 3,
            "started": None,
            "tokens": None,
        }
        assert len(openai_server.requests) == 1
        text = qm(tmp_path, "limits").stdout
        lines = [" ".join(line.replace("│", " ").split()) for line in text.splitlines()]
        assert f"{KEY} 1 - - llm:openai:* 1 3 - -" in lines
    finally:
        hold.set()
    assert [finish(w) for w in workers] == [[["completed", None]] * 2] * 2
    assert len(openai_server.requests) == 4
    assert openai_server.most_in_flight == 1
    assert limits(tmp_path) == [table_row(1, None, None)]


@pytest.mark.slow
def test_waiters_for_the_window_lapse_with_their_killed_process(
    shared_store: dict[str, Any], openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    """``max_requests = 1`` an hour: of 2 processes x 2 flows one call starts and 3
    wait for the window; once both processes are SIGKILLed their marks lapse within
    the lease time (2 s) and ``qm limits`` shows the key no more (nothing holds or
    waits: only its table's row)."""
    lease = 2.0
    openai_server.default = completion("ok", model="gpt-4o-mini")
    write_config(tmp_path, shared_store, 'max_requests = 1\nper = "1h"')
    cfg = config(shared_store, openai_server, None, max_requests=1, per="1h")
    workers = [start(config=cfg, flows=2, nodes=1, lease=lease) for _ in range(2)]
    try:
        row = row_when(tmp_path, lambda r: r["waiting"] == 3)
        assert row == {
            "key": KEY,
            "limit": None,
            "max_requests": 1,
            "max_tokens": None,
            "per": 3600.0,
            "table": "llm:openai:*",
            "in_flight": 0,
            "waiting": 3,
            "started": 1,
            "tokens": None,
        }
        assert len(openai_server.requests) == 1
    finally:
        for worker in workers:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
    # Marked last at most now, each waiter's mark lapses by now + lease: then no key
    # holds or waits, and only the table's row shows.
    time.sleep(lease + 0.5)
    assert limits(tmp_path) == [table_row(None, 1, 3600.0)]


def test_on_the_memory_store_the_process_counts_its_own_waiters(
    openai_server: FakeOpenAI,
) -> None:
    hold = threading.Event()
    openai_server.default = dataclasses.replace(completion("ok", model="gpt-4o-mini"), gate=hold)

    async def go() -> tuple[dict[str, int], dict[str, int], list[str]]:
        async with Engine.from_config(config({"name": "memory"}, openai_server, 1)) as engine:
            limited = engine.key_limits
            assert limited is not None
            runs = [asyncio.ensure_future(engine.run(llm_chain(1), f"q{i}")) for i in range(4)]
            while True:
                waiting = await limited.waiting()
                if waiting.get(KEY, 0) >= 3:
                    break
                await asyncio.sleep(0.01)
            hold.set()
            done = await asyncio.gather(*runs)
            return waiting, await limited.waiting(), [r.status.value for r in done]

    try:
        waiting, after, statuses = asyncio.run(go())
    finally:
        hold.set()
    assert waiting == {KEY: 3}
    assert after == {}
    assert statuses == ["completed"] * 4
    assert len(openai_server.requests) == 4

"""A key's slots go to its line first come, first served, across processes: real
processes queue in a known order behind a held slot, then race for it (each asks
every 5 ms); each gets it in its turn. On SQLite, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from limit_support import start

from quartermaster_engine import Engine
from quartermaster_engine.runner.window_line import by_key
from quartermaster_engine.stores.adapter import _done

TAKER = Path(__file__).with_name("line_taker.py")


@pytest.mark.slow
def test_processes_get_a_slot_in_the_order_they_queued(
    shared_store: dict[str, Any], tmp_path: Path
) -> None:
    key, order = "api:line", tmp_path / "order"

    async def store_call(method: str, *args: Any) -> Any:
        async with Engine.from_config({"store": shared_store}) as eng:
            return await _done(getattr(eng.store, method)(*args))

    now = time.time()
    assert asyncio.run(store_call("take_slot", key, "first", 1, now, now + 60)) == 0
    names = [f"p{i}" for i in range(6)]
    procs, places = [], []
    for name in names:  # each one queued before the next starts
        proc = start(TAKER, store=shared_store, key=key, name=name, order=str(order))
        assert proc.stdout is not None
        places.append(int(proc.stdout.readline()))
        procs.append(proc)
    assert places == [1, 2, 3, 4, 5, 6]
    assert asyncio.run(store_call("waiting_counts", time.time())) == {key: 6}
    asyncio.run(store_call("release_slot", key, "first"))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert order.read_text().split() == names
    assert asyncio.run(store_call("waiting_counts", time.time())) == {}
    assert asyncio.run(store_call("slots_in_use", time.time())) == {}


WINDOW_TAKER = Path(__file__).with_name("window_taker.py")


@pytest.mark.slow
def test_processes_pass_a_full_window_in_the_order_they_queued(
    shared_store: dict[str, Any], tmp_path: Path
) -> None:
    """A window of one start per 1.5 s, full: 6 processes find it full one after the
    other and queue in its line; each time it has room the first in line starts, so
    they start in their order, one per window."""
    key, order, per = "api:window", tmp_path / "order", 1.5

    async def store_call(method: str, *args: Any) -> Any:
        async with Engine.from_config({"store": shared_store}) as eng:
            return await _done(getattr(eng.store, method)(*args))

    def waiting() -> dict[str, int]:
        return by_key(asyncio.run(store_call("waiting_counts", time.time())))

    names = [f"p{i}" for i in range(6)]
    procs = []
    for name in names:
        go = tmp_path / f"go-{name}"
        args = {"key": key, "name": name, "order": str(order), "per": per, "go": str(go)}
        procs.append((start(WINDOW_TAKER, store=shared_store, **args), go))
    for proc, _ in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    assert asyncio.run(store_call("take_request", key, 1, per, time.time())) == 0.0
    for count, (_, go) in enumerate(procs, 1):  # each one queued before the next asks
        go.touch()
        deadline = time.monotonic() + 30
        while waiting().get(key, 0) < count and time.monotonic() < deadline:
            time.sleep(0.01)
    assert not order.exists()  # all 6 queued within the first window
    for proc, _ in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert order.read_text().split() == names
    assert waiting() == {}

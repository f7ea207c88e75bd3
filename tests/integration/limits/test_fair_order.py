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

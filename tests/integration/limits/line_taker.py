"""A process of the fair-order test: ``python line_taker.py '<json args>'``.

Opens the store (``[store]`` in ``store``), asks once for a slot of ``key`` (limit 1)
as ``name`` and prints its place in the key's line; then asks again every 5 ms
until it has the slot, appends ``name`` to ``order``, holds the slot 50 ms and
gives it up.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from quartermaster_engine import Engine
from quartermaster_engine.stores.adapter import _done


async def main(args: dict[str, Any]) -> None:
    async with Engine.from_config({"store": args["store"]}) as eng:
        store, key, name = eng.store, args["key"], args["name"]

        async def take() -> int:
            now = time.time()
            return int(await _done(store.take_slot(key, name, 1, now, now + 30)))

        print(await take(), flush=True)
        while True:  # a race of processes: every 5 ms, each asks
            if not await take():
                break
            await asyncio.sleep(0.005)
        fd = os.open(args["order"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name}\n".encode())
        finally:
            os.close(fd)
        await asyncio.sleep(0.05)
        await _done(store.release_slot(key, name))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))

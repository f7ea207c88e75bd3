"""A process of the window fair-order test: ``python window_taker.py '<json args>'``.

Opens the store (``[store]`` in ``store``), prints ``ready``, waits for the file
``go`` to appear, then starts one activation of ``key`` under a window of one start
per ``per`` seconds (`KeyLimits.held`, waiting in the task as thread and async
dispatchers do) and appends ``name`` to ``order`` once it has started.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from quartermaster_engine import Engine
from quartermaster_engine.runner.key_limits import KeyLimits, Rule


async def main(args: dict[str, Any]) -> None:
    async with Engine.from_config({"store": args["store"]}) as eng:
        rule = Rule(max_requests=1, per=float(args["per"]))
        limits = KeyLimits({args["key"]: rule}, eng.store, 30.0)
        print("ready", flush=True)
        go = Path(args["go"])
        while not await asyncio.to_thread(go.exists):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        async with limits.held(((args["key"], rule),)):
            fd = os.open(args["order"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{args['name']}\n".encode())
            finally:
                os.close(fd)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))

"""A process of the budget race: ``python budget_race.py '<json args>'``.

Opens the store ``store`` (a ``[store]`` section), waits for the file ``go``
(after touching ``ready``), then executes the activation ``ref`` of flow
``flow_id`` as a distributed worker does, waits until the other racer has
executed it too, and completes it; prints whether its commit was a duplicate.
Its engine counts the tokens of the key ``tenant:acme`` in the store's window.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from budget_support import TENANT, engine

from quartermaster_engine import assembly
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.runner.key_limits import Rule
from quartermaster_engine.runner.stepper import FlowStepper


async def main(args: dict[str, Any]) -> dict[str, Any]:
    store = assembly.build_store(EngineConfig.load({"store": args["store"]}, environ={}))
    tokens = {TENANT: Rule(max_tokens=1_000_000, per=3600.0)}  # counts, never waits
    async with engine(store, tokens, max_tokens=10_000) as eng:
        eng.own(store)
        flow_id = UUID(args["flow_id"])
        node, visit, attempt = args["ref"]
        stepper = FlowStepper(eng)
        Path(args["ready"]).touch()  # noqa: ASYNC240 - once, before the race
        while not Path(args["go"]).exists():  # noqa: ASYNC240
            time.sleep(0.001)  # noqa: ASYNC251 - a tight start line for the race
        work = await stepper.execute(flow_id, (UUID(node), visit, attempt))
        assert work is not None
        # Both have executed before either commits: a duplicate delivery.
        Path(args["ready"] + ".executed").touch()  # noqa: ASYNC240
        while len(list(Path(args["go"]).parent.glob("*.executed"))) < 2:
            time.sleep(0.001)  # noqa: ASYNC251
        done = await stepper.complete(work)
    return {"duplicate": done.duplicate}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))

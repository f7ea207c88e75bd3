"""A process spending a key's budget: ``python key_budget_worker.py '<json args>'``.

Opens the store ``store`` (a ``[store]`` section), waits for the file ``go``
(after touching ``ready``), then runs ``flows`` flows of the chain ``names`` (each
node declaring the key ``tenant:acme``) one after the other, with the budget
``budget`` of that key; prints each flow's status and error.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from budget_support import TENANT, chain, engine

from quartermaster_engine import assembly
from quartermaster_engine.config import EngineConfig


async def main(args: dict[str, Any]) -> list[list[Any]]:
    store = assembly.build_store(EngineConfig.load({"store": args["store"]}, environ={}))
    results: list[list[Any]] = []
    async with engine(store, **{TENANT: args["budget"]}) as eng:
        eng.own(store)
        Path(args["ready"]).touch()  # noqa: ASYNC240 - once, before the start
        while not Path(args["go"]).exists():  # noqa: ASYNC240
            time.sleep(0.001)  # noqa: ASYNC251 - a common start line
        for _ in range(args["flows"]):
            result = await eng.run(chain(args["names"]), "go")
            results.append([result.status.value, result.error])
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))

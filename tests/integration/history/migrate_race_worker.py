"""A process of the migration-race test: ``python migrate_race_worker.py <command> '<json>'``.

Prints one JSON line. Once ``go`` exists, ``migrate`` moves every flow of
``flows`` in turn to the history graph's version 2 (`GRAPH_V2`) and reports each
`MigrationReport` (outcome, error class, reason); ``resume`` answers every flow
of ``flows`` in turn and reports ``ok``, ``busy`` (`FlowBusyError`) or ``state``
(`FlowStateError`), with the error text. (``pause`` is edit_race_worker's.)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from edit_race_worker import make_store, wait_for_go
from history_support import GRAPH_V2, registry

from quartermaster_engine import Engine
from quartermaster_engine.runner.errors import FlowBusyError, FlowStateError


async def main(command: str, args: dict[str, Any]) -> dict[str, Any]:
    store = make_store(args["store"])
    async with Engine(store, registry=registry()) as engine:
        try:
            outcomes: dict[str, list[str]] = {}
            started = time.perf_counter()
            for fid in args["flows"]:
                if command == "migrate":
                    report = await engine.migrate(fid, GRAPH_V2)
                    outcomes[fid] = [report.outcome, report.error, report.reason]
                    continue
                try:
                    await engine.resume(fid, "Bob")
                    outcomes[fid] = ["ok", "", ""]
                except FlowBusyError as exc:
                    outcomes[fid] = ["busy", type(exc).__name__, str(exc)]
                except FlowStateError as exc:
                    outcomes[fid] = ["state", type(exc).__name__, str(exc)]
            return {"outcomes": outcomes, "seconds": time.perf_counter() - started}
        finally:
            await store.close()


if __name__ == "__main__":
    arguments = json.loads(sys.argv[2])
    wait_for_go(Path(arguments["go"]))
    print(json.dumps(asyncio.run(main(sys.argv[1], arguments))), flush=True)

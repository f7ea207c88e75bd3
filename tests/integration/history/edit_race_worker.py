"""A process of the edit-race test: ``python edit_race_worker.py <command> '<json>'``.

Prints one JSON line. Commands: ``pause`` runs ``count`` flows of the history
graph to their pause; ``resume`` and ``edit``, once ``go`` exists, answer or
edit (memory, and the waiting node's messages) every flow of ``flows`` in turn
and report each outcome: ``ok``, ``busy`` (`FlowBusyError`) or ``state``
(`FlowStateError`), with the error text.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from history_support import GRAPH, registry

from quartermaster_engine import Engine
from quartermaster_engine.runner.errors import FlowBusyError, FlowStateError

#: The input messages the editor gives the waiting node (Ask).
MESSAGES = [{"role": "user", "content": "edited"}]


def make_store(spec: dict[str, Any]) -> Any:
    if spec["kind"] == "sqlite":
        from qm_store_sqlite import SQLiteStore

        return SQLiteStore(spec["path"])
    if spec["kind"] == "postgres":
        from qm_store_postgres import PostgresStore

        return PostgresStore(spec["url"], schema_name=spec["schema"])
    from qm_store_redis import RedisStore

    return RedisStore(spec["url"], key_prefix=spec["prefix"])


async def main(command: str, args: dict[str, Any]) -> dict[str, Any]:
    store = make_store(args["store"])
    async with Engine(store, registry=registry()) as engine:
        try:
            if command == "pause":
                flows = [await engine.run(GRAPH, f"go {i}") for i in range(args["count"])]
                return {"flows": [str(r.flow_id) for r in flows]}
            outcomes: dict[str, list[str]] = {}
            for fid in args["flows"]:
                try:
                    if command == "resume":
                        await engine.resume(fid, "Bob")
                    else:
                        await engine.update(fid, memory={"edited": True}, messages=MESSAGES)
                    outcomes[fid] = ["ok", ""]
                except FlowBusyError as exc:
                    outcomes[fid] = ["busy", str(exc)]
                except FlowStateError as exc:
                    outcomes[fid] = ["state", str(exc)]
            return {"outcomes": outcomes}
        finally:
            await store.close()


def wait_for_go(go: Path) -> None:
    """Say this process is ready, then wait until the test lets every worker go."""
    go.with_name(f"ready-{os.getpid()}").touch()
    while not go.exists():
        time.sleep(0.001)


if __name__ == "__main__":
    arguments = json.loads(sys.argv[2])
    if "go" in arguments:
        wait_for_go(Path(arguments["go"]))
    print(json.dumps(asyncio.run(main(sys.argv[1], arguments))), flush=True)

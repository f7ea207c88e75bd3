"""Migration of 100 paused flows while two other processes resume some of them, on
SQLite (a file the processes share), Redis and PostgreSQL: each flow ends either
migrated (and, when resumed, run on the new graph) or resumed on its old graph,
never both, never lost; checked per flow from the store and its event log."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from edit_race_worker import make_store
from history_support import registry

from quartermaster_engine import Engine, FlowStatus
from quartermaster_engine.events import FlowMigrated, FlowResumed
from quartermaster_engine.testing import call

HERE = Path(__file__).parent
FLOWS = 100
#: The flows the resumers leave alone (only migrated).
UNTOUCHED = 20
#: The nodes that run before the pause (Start, the loop twice, then Ask waits).
BEFORE_PAUSE = 12


def _start(script: str, command: str, **args: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    return subprocess.Popen(
        [sys.executable, str(HERE / script), command, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"worker exited {proc.returncode}:\n{err}"
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
def test_migration_racing_two_resuming_processes(
    store_spec: dict[str, Any], tmp_path: Path
) -> None:
    paused = _start("edit_race_worker.py", "pause", store=store_spec, count=FLOWS)
    flows: list[str] = _finish(paused)["flows"]
    go = tmp_path / "go"
    # The resumers go from the end, the migrator from the start: they meet.
    resumed_part = flows[UNTOUCHED:][::-1]
    migrator = _start(
        "migrate_race_worker.py", "migrate", store=store_spec, flows=flows, go=str(go)
    )
    resumers = [
        _start("migrate_race_worker.py", "resume", store=store_spec, flows=part, go=str(go))
        for part in (resumed_part[0::2], resumed_part[1::2])
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < 3:
        assert time.monotonic() < deadline, "the workers did not get ready"
        time.sleep(0.01)
    go.touch()
    migrated = _finish(migrator)["outcomes"]
    resumed: dict[str, list[str]] = {}
    for proc in resumers:
        resumed.update(_finish(proc)["outcomes"])

    async def read() -> dict[str, Any]:
        """Per flow: its record and event log after the race, then its history and
        status once every flow still paused is answered here (it runs the graph it
        has)."""
        store = make_store(store_spec)
        try:
            async with Engine(store, registry=registry()) as engine:
                found: dict[str, Any] = {}
                for fid in flows:
                    record = await engine.store_adapter.get_flow(UUID(fid))
                    events = [e async for e in engine.events(fid)]
                    if record.status is FlowStatus.PAUSED:
                        await engine.resume(fid, "Ann")
                    end = await engine.store_adapter.get_flow(UUID(fid))
                    found[fid] = (record, events, await engine.history(fid), end.status)
                return found
        finally:
            call(store, "close")

    found = asyncio.run(read())
    counts = {"migrated": 0, "resumed_old": 0, "busy": 0}
    for fid in flows:
        outcome, error, reason = migrated[fid]
        record, events, history, status = found[fid]
        moves = [e for e in events if isinstance(e, FlowMigrated)]
        resumes = [e for e in events if isinstance(e, FlowResumed)]
        assert outcome in ("migrated", "refused"), (fid, migrated[fid])
        assert len(moves) == (1 if outcome == "migrated" else 0), fid
        assert record.graph.name == ("v2" if outcome == "migrated" else "contract"), fid
        assert status is FlowStatus.COMPLETED, (fid, status)
        names = [c.node_name for c in history[BEFORE_PAUSE:]]
        if outcome == "migrated":
            counts["migrated"] += 1
            # Moved first: whoever answered it ran the new graph.
            assert names == ["Ask", "Polish", "End"], (fid, names)
            if resumes:
                assert moves[0].seq < resumes[0].seq, fid
        else:
            # Refused only because a resume held it or had ended it: the old graph ran.
            assert names == ["Ask", "End"], (fid, names, reason)
            assert resumed.get(fid, [""])[0] == "ok", (fid, resumed.get(fid), reason)
            if error == "FlowBusyError":
                counts["busy"] += 1
                assert reason.endswith("migrating a flow needs it"), reason
            elif error == "FlowStateError":
                counts["resumed_old"] += 1
                assert reason == (
                    f"flow {fid} is completed; only a paused (waiting for input or on a timer) "
                    "or failed flow can be migrated"
                ), reason
            else:
                raise AssertionError((fid, error, reason))
        assert [c.node_name for c in history[:BEFORE_PAUSE]][-1] == "Ask", fid
    for fid in flows[:UNTOUCHED]:
        assert migrated[fid][0] == "migrated", (fid, migrated[fid])
    for fid, (outcome, _error, reason) in resumed.items():
        if outcome == "busy":
            assert migrated[fid][0] == "migrated", (fid, reason)
            assert reason.endswith("it cannot be resumed now"), reason
        else:
            assert outcome == "ok", (fid, outcome, reason)
    assert sum(counts.values()) == FLOWS
    print(store_spec["kind"], counts)

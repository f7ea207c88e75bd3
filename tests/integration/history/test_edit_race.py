"""An edit racing a resume of the same paused flows from another process, on
SQLite, Redis and PostgreSQL: for each flow one of them wins (holds the flow's
lease), the other gets a named error or finds the flow as the winner left it;
never both half-applied."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from edit_race_worker import make_store

from quartermaster_engine import Engine
from quartermaster_engine.history import EDITED
from quartermaster_engine.testing import call

WORKER = Path(__file__).with_name("edit_race_worker.py")
#: Enough flows that the two processes, going through them in opposite orders,
#: meet on some (with 40 on SQLite: one busy resume, a dozen completed edits).
FLOWS = 30


def _start(command: str, **args: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent), *sys.path])}
    return subprocess.Popen(
        [sys.executable, str(WORKER), command, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, f"worker exited {proc.returncode}:\n{err}"
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
def test_an_edit_racing_a_resume_from_another_process(
    store_spec: dict[str, Any], tmp_path: Path
) -> None:
    flows = _finish(_start("pause", store=store_spec, count=FLOWS))["flows"]
    go = tmp_path / "go"
    resumer = _start("resume", store=store_spec, flows=flows, go=str(go))
    editor = _start("edit", store=store_spec, flows=flows[::-1], go=str(go))
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < 2:
        assert time.monotonic() < deadline, "the workers did not get ready"
        time.sleep(0.01)
    go.touch()
    resumed = _finish(resumer)["outcomes"]
    edited = _finish(editor)["outcomes"]

    async def read() -> dict[str, Any]:
        store = make_store(store_spec)
        try:
            async with Engine(store) as engine:
                return {fid: await engine.history(fid) for fid in flows}
        finally:
            call(store, "close")

    histories = asyncio.run(read())
    for fid in flows:
        (resume, resume_error), (edit, edit_error) = resumed[fid], edited[fid]
        outcomes = [c.outcome for c in histories[fid]]
        assert "ok" in (resume, edit), (fid, resumed[fid], edited[fid])
        if resume == "busy":
            assert resume_error.endswith("it cannot be resumed now"), resume_error
        if edit == "busy":
            assert edit_error.endswith("editing a flow needs it"), edit_error
        if edit == "state":
            assert edit_error.endswith(
                "is completed; only a paused, failed or stopped flow can be edited"
            ), edit_error
        # The store shows exactly what the winners did, in the order they did it.
        assert outcomes.count(EDITED) == (1 if edit == "ok" else 0)
        assert outcomes.count("finished") == (13 if resume == "ok" else 11)
        if edit == "ok" and resume == "ok":
            assert outcomes[12:] == [EDITED, "finished", "finished"]
            assert dict(histories[fid][-1].memory)["edited"] is True
            # The answered Ask ran with the edited messages (and the answer's output).
            assert [m.to_dict() for m in histories[fid][13].messages] == [
                {"role": "user", "content": "edited"},
                {"role": "assistant", "content": "hello Bob"},
            ]

"""A process forked from one that ran a flow with the synchronous ``run()`` (gunicorn
``--preload``, multiprocessing) runs flows too, on every store: it makes its own
event loops instead of waiting on the parent's, whose threads it does not have."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent

# The parent runs flows from a plain script and from inside a running loop (the
# engine's background loop thread), forks, and the child does both again.
FORK = """
import asyncio, json, os, sys
from race_worker import make_store, registry
from quartermaster_engine import FlowRunner
from quartermaster_engine.testing.graphs import chain_graph

args = json.loads(sys.argv[1])
store = make_store(args["spec"]) if args["spec"] else None
runner = FlowRunner(chain_graph(5, "work"), registry(args), **({"store": store} if store else {}))

async def inside_a_loop(text):
    return runner.run(text).final_output

print(runner.run("parent").final_output, asyncio.run(inside_a_loop("parent-loop")), flush=True)
pid = os.fork()
if pid == 0:
    print(runner.run("child").final_output, asyncio.run(inside_a_loop("child-loop")), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(runner.run("parent again").final_output, os.waitstatus_to_exitcode(status), flush=True)
"""


def _run_forking_script(spec: dict[str, Any] | None, tmp_path: Path) -> list[str]:
    args = {"spec": spec, "side": str(tmp_path / "side.log")}
    proc = subprocess.Popen(
        [sys.executable, "-c", FORK, json.dumps(args)],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a hung child is killed with its parent
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the forked child hung:\n{out}\n{err}")
    assert proc.returncode == 0, err
    return out.splitlines()


EXPECTED = [
    "n2(n1(n0(parent))) n2(n1(n0(parent-loop)))",
    "n2(n1(n0(child))) n2(n1(n0(child-loop)))",
    "n2(n1(n0(parent again))) 0",
]


def test_a_forked_child_runs_flows_on_every_store(
    store_spec: dict[str, Any], tmp_path: Path
) -> None:
    assert _run_forking_script(store_spec, tmp_path) == EXPECTED


def test_a_forked_child_runs_flows_on_the_default_store(tmp_path: Path) -> None:
    assert _run_forking_script(None, tmp_path) == EXPECTED

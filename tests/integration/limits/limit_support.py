"""Helpers of the limit tests: worker processes (`limit_worker`), their
configuration, and a real ``qm`` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fake_openai import FakeOpenAI

QM = str(Path(sys.executable).parent / "qm")
WORKER = Path(__file__).with_name("limit_worker.py")


def config(
    store: dict[str, Any], server: FakeOpenAI, limit: int | None, **table: Any
) -> dict[str, Any]:
    openai = {"base_url": server.base_url, "api_key": "sk-test"}
    data: dict[str, Any] = {
        "store": store,
        "nodes": {"Instruction1": {"provider": "openai", "providers": {"openai": openai}}},
    }
    if limit is not None:
        table["max_in_flight"] = limit
    if table:
        data["limits"] = {"llm:openai:*": table}
    return data


def start(script: Path = WORKER, **args: Any) -> subprocess.Popen[str]:
    """``script`` (a process of this folder, `limit_worker` by default) given ``args``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QM_", "OPENAI_"))}
    return subprocess.Popen(
        [sys.executable, str(script), json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONPATH": str(WORKER.parent)},
    )


def finish(proc: subprocess.Popen[str], timeout: float = 180.0) -> list[list[Any]]:
    results: list[list[Any]] = report(proc, timeout)["results"]
    return results


def report(proc: subprocess.Popen[str], timeout: float = 180.0) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker exited {proc.returncode}:\n{err}"
    done: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return done


def qm(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    return subprocess.run(
        [QM, *args], cwd=folder, env={**env, "COLUMNS": "100"}, capture_output=True, text=True
    )

"""SIGKILL a process mid-flow at seeded points; recover in a new process (the engine's
crash kit, `quartermaster_engine.testing.crash`, on a Redis store)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from qm_redis_support import RedisServer, env_ci, store_for, unique_prefix

from quartermaster_engine.testing.crash import SHAPES, check_sigkill_then_recover

WORKER = Path(__file__).with_name("qm_redis_crash_worker.py")
#: CI runs 24 kill points in all; a local run a quick subset.
SEEDS = range(12) if env_ci() else range(3)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_then_recover_in_a_new_process(
    redis_server: RedisServer, tmp_path: Path, shape: str, seed: int
) -> None:
    prefix = unique_prefix()

    def run_worker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(WORKER), redis_server.url, prefix, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    check_sigkill_then_recover(
        lambda: store_for(redis_server, prefix), run_worker, shape, seed, tmp_path / "side.txt"
    )

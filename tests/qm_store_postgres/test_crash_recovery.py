"""SIGKILL a process mid-flow at seeded points; recover in a new process (the engine's
crash kit, `quartermaster_engine.testing.crash`, on a PostgreSQL store)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from qm_pg_support import PostgresServer, env_ci, store_for, unique_schema

from quartermaster_engine.testing.crash import SHAPES, check_sigkill_then_recover

WORKER = Path(__file__).with_name("qm_pg_worker.py")
#: CI runs 24 kill points in all; a local run a quick subset.
SEEDS = range(12) if env_ci() else range(3)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_then_recover_in_a_new_process(
    pg_server: PostgresServer, tmp_path: Path, shape: str, seed: int
) -> None:
    schema = unique_schema()

    def run_worker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(WORKER), pg_server.url, schema, *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    check_sigkill_then_recover(
        lambda: store_for(pg_server, schema), run_worker, shape, seed, tmp_path / "side.txt"
    )

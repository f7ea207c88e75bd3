"""A process SIGKILLed during a 2 s Sleep1; another recovers it and the flow wakes at
the original wake time (`quartermaster_engine.testing.timers`, on Redis)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qm_redis_support import RedisServer, store_for, unique_prefix

from quartermaster_engine.testing.timers import check_sigkill_during_sleep

WORKER = Path(__file__).with_name("qm_redis_sleep_worker.py")


def test_sigkill_during_sleep_then_recover_wakes_at_the_original_time(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    prefix = unique_prefix()

    def run_worker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(WORKER), redis_server.url, prefix, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    figures = check_sigkill_during_sleep(
        lambda: store_for(redis_server, prefix), run_worker, tmp_path / "side"
    )
    assert 0.0 <= figures["late"] <= 1.0
    print(f"redis: flow ended {figures['late']:.3f} s after the wake time")

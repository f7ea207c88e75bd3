"""The clock of ``qm worker``: a thread that wakes flows parked on a due timer.

A woken flow is recovered through the configured engine, whose ``celery``
dispatcher publishes its next activation like any other (no Celery ETA task
holds a long timer: those are lost or redelivered on the Redis broker past its
visibility timeout). Several workers may run it: waking is a fenced claim of the
flow's lease, so a timer wakes its flow once (docs/time.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading

from quartermaster_engine import Engine
from quartermaster_engine.runner.timers import can_park

logger = logging.getLogger("qm_dispatch_celery.clock")


def start_clock(config_path: str | None) -> threading.Thread:
    """Start the clock thread (a daemon: it ends with the worker)."""

    async def keep() -> None:
        async with Engine.from_config(config_path) as engine:
            if not can_park(engine):
                logger.info("qm worker: the store cannot find due timers; no clock runs")
                return
            await engine.keep_clock()

    def run() -> None:
        try:
            asyncio.run(keep())
        except Exception:  # the worker goes on; flows stay parked for another clock
            logger.exception("qm worker: the clock stopped")

    thread = threading.Thread(target=run, name="qm-clock", daemon=True)
    thread.start()
    return thread

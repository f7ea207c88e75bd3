"""``qm clock``: keep the clock of a durable store in a process of its own, for
deployments that run neither ``qm serve`` nor ``qm worker`` (docs/time.md).

Each round wakes flows whose timer is due (a Sleep1, a retry delay) or whose
deadline passed, then fires due schedules (`runner.timers.clock_round`). Any
number may run beside each other and beside servers and workers: waking a flow
and claiming a tick are fenced in the store, so each happens once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from uuid import UUID

import click

from quartermaster_engine.cli.common import (
    config_option,
    echo_json,
    fail,
    guarded,
    json_option,
    load_config,
)
from quartermaster_engine.runner.engine import Engine
from quartermaster_engine.runner.timers import CLOCK_EVERY, can_park, clock_once
from quartermaster_engine.stores.memory_store import InMemoryStore


def _checked(engine: Engine, store_name: str) -> None:
    """Refuse a store a clock process cannot serve (ends the command)."""
    if not engine.store_adapter.durable or isinstance(engine.store, InMemoryStore):
        fail(
            f"the configured store ({store_name}) keeps nothing across processes: "
            "qm clock needs a durable store"
        )
    if not can_park(engine):
        fail(
            f"the configured store ({store_name}) cannot find due timers "
            "(it does not implement FindsDueTimers)"
        )


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


async def _keep(engine: Engine, every: float) -> bool:
    """Keep the clock until SIGTERM or SIGINT (then let the flows started here end
    or park); a second signal cancels at once. True if it stopped gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    keeping = asyncio.ensure_future(engine.keep_clock(every, stop=stop))

    def on_signal() -> None:
        if stop.is_set():
            keeping.cancel()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await keeping
    except asyncio.CancelledError:
        return False
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return True


@click.command("clock")
@config_option
@click.option(
    "--once",
    is_flag=True,
    help="Do one round (wake what is due, fire due ticks), wait for those flows to "
    "end or park, print what it did and exit.",
)
@click.option(
    "--every",
    type=click.FloatRange(min=0.01),
    default=CLOCK_EVERY,
    show_default=True,
    help="Seconds between two rounds.",
)
@json_option
def clock_command(config_path: str | None, once: bool, every: float, as_json: bool) -> None:
    """Keep the clock of the configured store: wake flows whose timer is due, pass
    deadlines and fire schedules, until SIGTERM or SIGINT (for deployments with
    neither qm serve nor qm worker; several may run)."""
    config = load_config(config_path)
    logging.basicConfig(level=logging.WARNING, format="qm clock: %(message)s")

    async def main() -> tuple[bool, list[UUID], list[UUID]]:
        engine = guarded(Engine.from_config, config)
        async with engine:
            _checked(engine, config.store.name)
            if once:
                woke, started = await clock_once(engine)
                return True, woke, started
            click.echo(
                f"qm clock: keeping the clock of {engine.store_name()} every {every:g} s "
                "(SIGTERM or SIGINT stops it)",
                err=True,
            )
            return await _keep(engine, every), [], []

    graceful, woke, started = asyncio.run(main())
    if not graceful:
        fail("stopped at once: flows it was running are left for qm recover")
    if not once:
        click.echo("qm clock: stopped", err=True)
    elif as_json:
        echo_json({"woke": [str(f) for f in woke], "started": [str(f) for f in started]})
    else:
        click.echo(
            f"woke {_count(len(woke), 'flow')}, started {_count(len(started), 'scheduled flow')}"
        )

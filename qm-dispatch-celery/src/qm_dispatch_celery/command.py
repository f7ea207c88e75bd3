"""``qm worker``: run the nodes of flows handed to the ``celery`` dispatcher.

Registered with ``qm_register_commands``; the core's ``qm`` knows the command's
name only, and without this distribution says what to install.
"""

from __future__ import annotations

import os

import click

from quartermaster_engine.cli.common import config_option, reported


@click.command("worker")
@config_option
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Activations this worker runs at once (worker processes; default: the CPUs).",
)
@click.option(
    "--plugin",
    "-p",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE's node executors (its qm_register_node_executors function); "
    "repeatable. The current directory is importable.",
)
@click.option("--loglevel", "-l", default="INFO", show_default=True, help="Celery log level.")
@click.option("--pool", default=None, help="Celery pool (prefork, threads, solo; default prefork).")
@click.option(
    "--hostname",
    "-n",
    default=None,
    help="Celery node name (default qm-PID@HOST: several workers on one machine each "
    "need their own).",
)
@click.option(
    "--clock/--no-clock",
    default=True,
    show_default=True,
    help="Wake flows parked on a due timer (a Sleep1, a long retry delay; docs/time.md).",
)
def worker_command(
    config_path: str | None,
    concurrency: int | None,
    modules: tuple[str, ...],
    loglevel: str,
    pool: str | None,
    hostname: str | None,
    clock: bool,
) -> None:
    """Start a Celery worker that runs the nodes of flows of the configured store
    (needs [dispatcher] name = "celery"; see docs/scale-out.md)."""
    from qm_dispatch_celery.worker_app import build_worker_app

    if config_path is not None:
        # Worker processes read the same configuration (prefork children, -A apps).
        os.environ["QM_CONFIG"] = os.path.abspath(config_path)
    if modules:
        os.environ["QM_WORKER_MODULES"] = ",".join(modules)
    with reported():
        app, worker = build_worker_app(config_path)
        worker.check()
    # Celery's banner names the broker, not the store: say both, before it.
    click.echo(f"qm worker: {worker.describe()}", err=True)
    name = hostname or f"qm-{os.getpid()}@%h"
    argv = ["worker", "--loglevel", loglevel, "--queues", worker.settings.queue, "-n", name]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if pool is not None:
        argv += ["--pool", pool]
    if clock:
        from qm_dispatch_celery.clock import start_clock

        start_clock(config_path)
    app.worker_main(argv)

"""Plugin module registered under the entry-point group 'quartermaster': the ``celery``
dispatcher."""

from __future__ import annotations

from typing import Any

import click

from qm_dispatch_celery.dispatcher import CeleryDispatcher
from qm_dispatch_celery.settings import CelerySettings
from quartermaster_engine.plugins import Register, hookimpl


def create_dispatcher(settings: CelerySettings) -> CeleryDispatcher:
    """The ``celery`` dispatcher of a validated ``[dispatcher]`` section."""
    return CeleryDispatcher.from_settings(settings)


@hookimpl
def qm_register_dispatchers(register: Register) -> None:
    register(
        "celery",
        create_dispatcher,
        config_model=CelerySettings,
        description="the nodes of flows on a fleet of Celery workers (qm worker), any machine",
    )


def _worker(settings: Any) -> click.Command:
    # The command lives in the core (without this distribution it says what to
    # install); registering it here lists it among what qm-dispatch-celery provides.
    from quartermaster_engine.cli.worker_command import worker_command

    return worker_command


@hookimpl
def qm_register_commands(register: Register) -> None:
    register("worker", _worker, description="run the nodes of flows on this machine")

"""Plugin module registered under the entry-point group 'quartermaster': the ``celery``
dispatcher."""

from __future__ import annotations

from typing import Any

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


def worker_command(_: object) -> Any:
    """``qm worker``: a Celery worker running the nodes of flows of the configured store."""
    from qm_dispatch_celery.command import worker_command

    return worker_command


@hookimpl
def qm_register_commands(register: Register) -> None:
    register("worker", worker_command, description="run the nodes of flows on this machine")

"""Plugin module registered under the entry-point group 'quartermaster': the ``celery``
dispatcher."""

from __future__ import annotations

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

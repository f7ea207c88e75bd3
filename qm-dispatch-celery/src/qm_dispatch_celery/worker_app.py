"""Assembling a worker's Celery app from the engine configuration."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_ready

from qm_dispatch_celery.celery_app import make_app
from qm_dispatch_celery.executor_modules import module_names
from qm_dispatch_celery.settings import CelerySettings
from qm_dispatch_celery.tasks import register_task
from qm_dispatch_celery.worker import Worker
from quartermaster_engine import assembly
from quartermaster_engine.config import ConfigError, EngineConfig
from quartermaster_engine.plugins.loader import load_plugins


def worker_settings(config: EngineConfig) -> CelerySettings:
    """The validated ``[dispatcher]`` section; it must name the ``celery`` dispatcher."""
    if config.dispatcher.name != "celery":
        raise ConfigError(
            f'a worker needs [dispatcher] name = "celery"; the configuration has '
            f"{config.dispatcher.name!r} (from {config.source_of('dispatcher.name')})"
        )
    registration = load_plugins().registry("dispatcher").get("celery")
    settings = assembly.settings_for(registration, config.dispatcher.settings, config, "dispatcher")
    assert isinstance(settings, CelerySettings)
    return settings


def build_worker_app(config: Any = None) -> tuple[Celery, Worker]:
    """The worker's app with the ``qm.activation`` task, and the `Worker` behind it.
    The sweep starts when the Celery worker is ready."""
    engine_config = config if isinstance(config, EngineConfig) else EngineConfig.load(config)
    settings = worker_settings(engine_config)
    app = make_app(settings)
    worker = Worker(engine_config, settings, app, module_names(settings.modules))
    register_task(app, worker)

    @worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
    def _sweep_when_ready(sender: Any = None, **_: Any) -> None:
        worker.start_sweeping()

    return app, worker

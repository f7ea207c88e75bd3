"""The ``[dispatcher]`` section of the celery dispatcher, as the client reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from qm_dispatch_celery import CeleryDispatcher
from quartermaster_engine import FlowRunner
from quartermaster_engine.config import ConfigError
from quartermaster_engine.testing import chain_graph


def test_broker_url_is_required(tmp_path: Path) -> None:
    config = {
        "store": {"name": "sqlite", "path": str(tmp_path / "f.db")},
        "dispatcher": {"name": "celery"},
    }
    with pytest.raises(ConfigError) as caught:
        FlowRunner.from_config(chain_graph(3), config)
    assert str(caught.value) == (
        "dispatcher 'celery' of qm-dispatch-celery 0.2.0 (plugin 'celery'): "
        "setting 'broker_url': Field required (not set)"
    )


def test_settings_reach_celery(tmp_path: Path) -> None:
    config = {
        "store": {"name": "sqlite", "path": str(tmp_path / "f.db")},
        "dispatcher": {
            "name": "celery",
            "broker_url": "redis://127.0.0.1:1/3",
            "queue": "agents",
            "visibility_timeout": 7200,
            "task_time_limit": 600,
        },
    }
    with FlowRunner.from_config(chain_graph(3), config) as runner:
        dispatcher = runner.dispatcher
        assert isinstance(dispatcher, CeleryDispatcher)
        assert runner.remote is True
        conf = dispatcher.app.conf
        assert (conf.broker_url, conf.task_default_queue, conf.task_time_limit) == (
            "redis://127.0.0.1:1/3",
            "agents",
            600.0,
        )
        assert conf.broker_transport_options["visibility_timeout"] == 7200.0
        assert (conf.task_acks_late, conf.task_reject_on_worker_lost) == (True, True)
        assert conf.worker_prefetch_multiplier == 1

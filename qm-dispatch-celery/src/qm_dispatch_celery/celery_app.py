"""The Celery application of the engine, and publishing one activation.

One task, ``qm.activation(flow_id, node_id, visit, attempt)``: run that pending
activation of the stored flow (see `worker`). Clients only publish it by name,
so they need no worker code.
"""

from __future__ import annotations

import time
from uuid import UUID

from celery import Celery

from qm_dispatch_celery.settings import CelerySettings
from quartermaster_engine.runner.queue_refs import ActivationRef

#: The one task of the engine.
TASK_NAME = "qm.activation"


def make_app(settings: CelerySettings, name: str = "quartermaster") -> Celery:
    """A Celery app configured from the ``[dispatcher]`` settings."""
    app = Celery(name)
    app.conf.update(settings.celery_config())
    return app


def publish(
    app: Celery, settings: CelerySettings, flow_id: UUID, ref: ActivationRef, due: float
) -> None:
    """Queue one activation; ``due`` (epoch seconds, 0 for now) becomes its countdown."""
    node_id, visit, attempt = ref
    countdown = max(0.0, due - time.time()) if due else None
    app.send_task(
        TASK_NAME,
        args=(str(flow_id), str(node_id), visit, attempt),
        queue=settings.queue,
        countdown=countdown or None,
        retry=True,
        retry_policy={
            "max_retries": None,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 5.0,
        },
    )

"""The ``qm.activation`` task on a worker's Celery app.

Outcomes: the activation ran (or was a duplicate) and the message is
acknowledged; this worker lacks the node's executor, so it waits
``refuse_delay`` seconds and rejects the message back onto the queue for a
worker that has it (the flow is never failed for it); the store or the lease
was not available, so the task is retried later with backoff (nothing was
committed, the executor runs again then) — without a limit on the number of
retries, whatever the outage's length: a dropped message would strand its flow
until the sweep. A retry of an activation that was committed meanwhile, or whose
flow ended or was deleted, is dropped as a duplicate. An activation over a limit
key (`LimitWait`: its key's slots are taken, or its window is full) is given back:
published again to run after the wait the limits name, keeping its place in the
key's line under the task's id, so no worker thread sleeps on a limit.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

from celery import Celery
from celery.exceptions import Reject, SoftTimeLimitExceeded

from qm_dispatch_celery.celery_app import TASK_NAME
from qm_dispatch_celery.worker import Worker
from quartermaster_engine._sync import run_sync
from quartermaster_engine.runner.errors import MissingExecutorError
from quartermaster_engine.runner.limit_waits import LimitWait
from quartermaster_engine.stores.base import FlowNotFoundError

logger = logging.getLogger("qm_dispatch_celery")

#: Longest wait between retries of a task the store could not take (seconds): an
#: activation runs again within this long of the store's return. A retry costs one
#: message and one store round-trip, so a short cap is cheap.
MAX_BACKOFF = 5.0


def register_task(app: Celery, worker: Worker) -> Any:
    """Add ``qm.activation`` to ``app``, run by ``worker``."""

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_NAME,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        # None: retry forever. (``task.retry(max_retries=None)`` means "the task's
        # own limit", Celery's default of 3, which dropped the message after 3.5 s.)
        max_retries=None,
    )
    def activation(task: Any, flow_id: str, node_id: str, visit: int, attempt: int) -> str:
        fid, ref = UUID(flow_id), (UUID(node_id), visit, attempt)
        waiter = f"celery:{task.request.id}"
        try:
            return run_sync(worker.handle(fid, ref, waiter=waiter, again=task.request.retries > 0))
        except LimitWait as wait:
            logger.debug("activation %s of flow %s: %s", node_id, flow_id, wait)
            raise task.retry(countdown=wait.seconds) from None
        except MissingExecutorError as exc:
            logger.error(
                "refused activation %s (visit %d, attempt %d) of flow %s: %s; handing it "
                "back for a worker that has it",
                node_id, visit, attempt, flow_id, exc,
            )  # fmt: skip
            time.sleep(worker.settings.refuse_delay)
            raise Reject(str(exc), requeue=True) from None
        except FlowNotFoundError:
            logger.warning("flow %s is no longer in the store; dropped its activation", flow_id)
            return "gone"
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            delay = min(MAX_BACKOFF, 0.5 * 2 ** min(task.request.retries, 10))
            logger.warning(
                "activation %s of flow %s could not finish (%s: %s); retrying in %.1f s",
                node_id, flow_id, type(exc).__name__, exc, delay,
            )  # fmt: skip
            raise task.retry(exc=exc, countdown=delay) from None

    return activation

"""The Celery app workers run: ``celery -A qm_dispatch_celery.app worker``.

Importing this module reads the engine configuration as every ``qm`` command
does (``$QM_CONFIG``, ``./qm.toml``, ``pyproject.toml``, ``QM_*`` variables),
whose ``[dispatcher]`` must be ``name = "celery"``, and imports the node
executor modules of its ``modules`` setting and of ``$QM_WORKER_MODULES``.
``qm worker`` does the same and starts the worker itself.
"""

from __future__ import annotations

from qm_dispatch_celery.worker_app import build_worker_app

app, worker = build_worker_app()

__all__ = ["app", "worker"]

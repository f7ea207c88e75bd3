"""qm-dispatch-celery: run the nodes of flows on a fleet of Celery workers.

Client::

    runner = FlowRunner.from_config(graph, "qm.toml")  # [dispatcher] name = "celery"
    result = runner.run("input")       # workers run the nodes; returns the FlowResult

Workers (any machine that reaches the broker and the store)::

    qm worker --config qm.toml --concurrency 8 -p my_nodes
    celery -A qm_dispatch_celery.app worker   # the same, started your own way

See docs/scale-out.md.
"""

from qm_dispatch_celery.celery_app import TASK_NAME, make_app
from qm_dispatch_celery.dispatcher import CeleryDispatcher
from qm_dispatch_celery.settings import CelerySettings

__version__ = "0.2.0"

__all__ = ["TASK_NAME", "CeleryDispatcher", "CelerySettings", "make_app"]

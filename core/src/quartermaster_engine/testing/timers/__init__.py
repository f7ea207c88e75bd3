"""Timer kits shared by the durable stores' test suites, one module each: a durable
sleep across a SIGKILL (`sleep`), clock processes racing to wake the same timers
(`clocks`), answers racing deadlines (`deadlines`) and a retry delay across a SIGKILL
(`retries`); `nodes` has the executors of their graphs.

A store's worker script calls `sleep_worker_main` with its store; its test calls
`check_sigkill_during_sleep`, starting the script with `processes.WorkerCommand`::

    def test_sleep_survives_sigkill(server, tmp_path):
        worker = WorkerCommand(WORKER_SCRIPT, server.url)
        check_sigkill_during_sleep(lambda: MyStore(server.url), worker.run, tmp_path / "side")
"""

from quartermaster_engine.testing.timers.clocks import (
    check_clocks_wake_each_timer_once,
    clock_worker_main,
)
from quartermaster_engine.testing.timers.deadlines import (
    answer_worker_main,
    ask_graph,
    check_answer_and_deadline_race,
)
from quartermaster_engine.testing.timers.retries import (
    RETRY_DELAY,
    RETRY_T0,
    check_retry_delay_survives_sigkill,
    retry_graph,
    retry_worker_main,
)
from quartermaster_engine.testing.timers.sleep import (
    SLEEP_SECONDS,
    RunWorker,
    check_sigkill_during_sleep,
    sleep_graph,
    sleep_worker_main,
)

__all__ = [
    "RETRY_DELAY",
    "RETRY_T0",
    "SLEEP_SECONDS",
    "RunWorker",
    "answer_worker_main",
    "ask_graph",
    "check_answer_and_deadline_race",
    "check_clocks_wake_each_timer_once",
    "check_retry_delay_survives_sigkill",
    "check_sigkill_during_sleep",
    "clock_worker_main",
    "retry_graph",
    "retry_worker_main",
    "sleep_graph",
    "sleep_worker_main",
]

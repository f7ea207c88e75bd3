"""A flow that sleeps, or a clock, in a process of its own: ``python
sqlite_sleep_worker.py DB run|recover FLOW_ID SIDE_FILE [SECONDS]`` or ``... DB clock
SIDE_FILE SECONDS`` or ``answer IDS DEADLINES`` (`quartermaster_engine.testing.timers`)."""

from __future__ import annotations

import json
import sys

from qm_store_sqlite import SQLiteStore
from quartermaster_engine.testing.schedules import schedule_clock_main
from quartermaster_engine.testing.timers import (
    answer_worker_main,
    clock_worker_main,
    retry_worker_main,
    sleep_worker_main,
)

if __name__ == "__main__":
    mains = {"clock": clock_worker_main, "answer": answer_worker_main}
    mains |= {"retry-run": retry_worker_main, "retry-recover": retry_worker_main}
    mains |= {"schedule-clock": schedule_clock_main}
    main = mains.get(sys.argv[2], sleep_worker_main)
    print(json.dumps(main(SQLiteStore(sys.argv[1]), sys.argv[2:])))

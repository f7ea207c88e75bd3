"""A flow that sleeps, in a process of its own: ``python qm_pg_sleep_worker.py DSN
SCHEMA run|recover FLOW_ID SIDE_FILE [SECONDS]`` or ``clock SIDE_FILE SECONDS``
or ``answer IDS DEADLINES`` (`quartermaster_engine.testing.timers`), or
``map-run|map-recover ...`` (`quartermaster_engine.testing.maps`)."""

from __future__ import annotations

import json
import sys

from qm_store_postgres import PostgresStore
from quartermaster_engine.testing.maps import map_worker_main
from quartermaster_engine.testing.schedules import schedule_clock_main
from quartermaster_engine.testing.timers import (
    answer_worker_main,
    clock_worker_main,
    retry_worker_main,
    sleep_worker_main,
)

if __name__ == "__main__":
    dsn, schema = sys.argv[1:3]
    mains = {"clock": clock_worker_main, "answer": answer_worker_main}
    mains |= {"retry-run": retry_worker_main, "retry-recover": retry_worker_main}
    mains |= {"schedule-clock": schedule_clock_main}
    mains |= {"map-run": map_worker_main, "map-recover": map_worker_main}
    main = mains.get(sys.argv[3], sleep_worker_main)
    print(json.dumps(main(PostgresStore(dsn, schema_name=schema), sys.argv[3:])))

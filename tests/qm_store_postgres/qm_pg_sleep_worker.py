"""A flow that sleeps, in a process of its own: ``python qm_pg_sleep_worker.py DSN
SCHEMA run|recover FLOW_ID SIDE_FILE [SECONDS]`` or ``clock SIDE_FILE SECONDS``
(`quartermaster_engine.testing.timers`)."""

from __future__ import annotations

import json
import sys

from qm_store_postgres import PostgresStore
from quartermaster_engine.testing.timers import clock_worker_main, sleep_worker_main

if __name__ == "__main__":
    dsn, schema = sys.argv[1:3]
    main = clock_worker_main if sys.argv[3] == "clock" else sleep_worker_main
    print(json.dumps(main(PostgresStore(dsn, schema_name=schema), sys.argv[3:])))

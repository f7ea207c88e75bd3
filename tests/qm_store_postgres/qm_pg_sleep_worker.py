"""A flow that sleeps, in a process of its own: ``python qm_pg_sleep_worker.py DSN
SCHEMA run|recover FLOW_ID SIDE_FILE [SECONDS]`` (`quartermaster_engine.testing.timers`)."""

from __future__ import annotations

import json
import sys

from qm_store_postgres import PostgresStore
from quartermaster_engine.testing.timers import sleep_worker_main

if __name__ == "__main__":
    dsn, schema = sys.argv[1:3]
    print(json.dumps(sleep_worker_main(PostgresStore(dsn, schema_name=schema), sys.argv[3:])))

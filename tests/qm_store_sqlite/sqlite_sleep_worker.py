"""A flow that sleeps, in a process of its own: ``python sqlite_sleep_worker.py DB
run|recover FLOW_ID SIDE_FILE [SECONDS]`` (`quartermaster_engine.testing.timers`)."""

from __future__ import annotations

import json
import sys

from qm_store_sqlite import SQLiteStore
from quartermaster_engine.testing.timers import sleep_worker_main

if __name__ == "__main__":
    print(json.dumps(sleep_worker_main(SQLiteStore(sys.argv[1]), sys.argv[2:])))

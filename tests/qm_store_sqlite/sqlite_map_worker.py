"""A flow that maps, in a process of its own: ``python sqlite_map_worker.py DB
map-run|map-recover FLOW_ID SIDE_FILE N K DIE_AFTER`` (`quartermaster_engine.testing.maps`)."""

from __future__ import annotations

import json
import sys

from qm_store_sqlite import SQLiteStore
from quartermaster_engine.testing.maps import map_worker_main

if __name__ == "__main__":
    print(json.dumps(map_worker_main(SQLiteStore(sys.argv[1]), sys.argv[2:])))

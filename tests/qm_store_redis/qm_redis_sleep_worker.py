"""A flow that sleeps, in a process of its own: ``python qm_redis_sleep_worker.py URL
PREFIX run|recover FLOW_ID SIDE_FILE [SECONDS]`` or ``clock SIDE_FILE SECONDS``
(`quartermaster_engine.testing.timers`)."""

from __future__ import annotations

import json
import sys

from qm_store_redis import RedisStore
from quartermaster_engine.testing.timers import clock_worker_main, sleep_worker_main

if __name__ == "__main__":
    url, prefix = sys.argv[1:3]
    main = clock_worker_main if sys.argv[3] == "clock" else sleep_worker_main
    print(json.dumps(main(RedisStore(url, key_prefix=prefix), sys.argv[3:])))

"""A flow that sleeps, in a process of its own: ``python qm_redis_sleep_worker.py URL
PREFIX run|recover FLOW_ID SIDE_FILE [SECONDS]`` or ``clock SIDE_FILE SECONDS``
or ``answer IDS DEADLINES`` (`quartermaster_engine.testing.timers`), or
``map-run|map-recover ...`` (`quartermaster_engine.testing.maps`)."""

from __future__ import annotations

import json
import sys

from qm_store_redis import RedisStore
from quartermaster_engine.testing.maps import map_worker_main
from quartermaster_engine.testing.schedules import schedule_clock_main
from quartermaster_engine.testing.timers import (
    answer_worker_main,
    clock_worker_main,
    retry_worker_main,
    sleep_worker_main,
)

if __name__ == "__main__":
    url, prefix = sys.argv[1:3]
    mains = {"clock": clock_worker_main, "answer": answer_worker_main}
    mains |= {"retry-run": retry_worker_main, "retry-recover": retry_worker_main}
    mains |= {"schedule-clock": schedule_clock_main}
    mains |= {"map-run": map_worker_main, "map-recover": map_worker_main}
    main = mains.get(sys.argv[3], sleep_worker_main)
    print(json.dumps(main(RedisStore(url, key_prefix=prefix), sys.argv[3:])))

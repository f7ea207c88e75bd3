"""A flow in a process of its own, for the crash and multi-process tests.

    python qm_redis_crash_worker.py URL PREFIX run|recover chain|fanout FLOW_ID SIDE_FILE \
        [KILL_AT HOW SEED]

The flow and the kill points are the engine's crash kit
(`quartermaster_engine.testing.crash`); prints the flow's result as JSON.
"""

from __future__ import annotations

import json
import sys

from qm_store_redis import RedisStore
from quartermaster_engine.testing.crash import worker_main

if __name__ == "__main__":
    url, prefix = sys.argv[1:3]
    print(json.dumps(worker_main(RedisStore(url, key_prefix=prefix), sys.argv[3:])))

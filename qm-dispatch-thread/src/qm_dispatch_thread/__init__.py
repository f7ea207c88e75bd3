"""qm-dispatch-thread: A thread-pool dispatcher for blocking node executors."""

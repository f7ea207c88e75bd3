"""The worker threads, and the per-node-type gates in front of them.

Workers take calls from one FIFO queue. A call of a node type with a limit
first passes that type's `TypeGate`: when the type already has ``limit`` calls
running, the call waits in the gate, not in a thread, so other types keep the
rest of the pool. The worker that finishes a gated call goes on with the next
call waiting at the same gate, so the gate's slot passes from call to call
without a trip through the queue.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Mapping

from qm_dispatch_thread.errors import DispatcherShutdownError
from qm_dispatch_thread.work import Work


class TypeGate:
    """At most ``limit`` calls of one node type run at once."""

    __slots__ = ("_lock", "_waiting", "limit", "running", "type_name")

    def __init__(self, type_name: str, limit: int) -> None:
        self.type_name = type_name
        self.limit = limit
        self.running = 0
        self._waiting: deque[Work] = deque()
        self._lock = threading.Lock()

    def admit(self, work: Work) -> bool:
        """Take a slot for ``work`` (True), or keep it waiting here (False)."""
        with self._lock:
            if self.running < self.limit:
                self.running += 1
                return True
            self._waiting.append(work)
            return False

    def next(self) -> Work | None:
        """After a call ends: the waiting call that inherits its slot, or None (slot freed)."""
        with self._lock:
            if self._waiting:
                return self._waiting.popleft()
            self.running -= 1
            return None

    def take_waiting(self) -> list[Work]:
        """Remove and return every waiting call."""
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
            return waiting


class WorkerPool:
    """Up to ``max_workers`` threads, started on demand, running `Work` in FIFO order."""

    def __init__(
        self, max_workers: int, type_limits: Mapping[str, int], thread_name_prefix: str
    ) -> None:
        self.max_workers = max_workers
        self.gates = {name: TypeGate(name, limit) for name, limit in type_limits.items()}
        #: Calls running in a worker right now (read by shutdown without wait).
        self.running: set[Work] = set()
        self.closed = False
        #: Set by ``close(abandon=True)``: a call a worker takes from now on is dropped.
        self.dropping = False
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        # Workers that went back to the queue and no submit has counted on yet:
        # a submit that takes one knows an idle worker will pick its call up.
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def threads(self) -> int:
        """How many worker threads were started."""
        return len(self._threads)

    def submit(self, work: Work) -> None:
        """Queue ``work`` (behind its type's gate if it has one); any thread."""
        # One lock around the closed check and the put: a call can never land
        # behind the stop markers of a closing pool, where no worker would see it.
        with self._lock:
            if self.closed:
                raise DispatcherShutdownError(
                    "the thread dispatcher is shut down; create a new ThreadDispatcher"
                )
            gate = work.gate
            if gate is not None and not gate.admit(work):
                return
            self._queue.put(work)
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self.max_workers:
                self._start_worker()

    def _start_worker(self) -> None:
        thread = threading.Thread(
            target=_work_loop,
            args=(self,),
            name=f"{self._prefix}_{len(self._threads)}",
            # Idle workers must not hold up interpreter exit when nobody called
            # shutdown(); shutdown(wait=True) is how to wait for running calls.
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)

    def close(self, abandon: bool) -> list[Work]:
        """Accept no more calls and let the workers exit once the queue is empty.

        With ``abandon``, calls that have not started are removed and returned
        (their owner settles them). Safe to call more than once.
        """
        with self._lock:
            self.closed = True
            dropped: list[Work] = []
            if abandon:
                self.dropping = True
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        dropped.append(item)
                for gate in self.gates.values():
                    dropped.extend(gate.take_waiting())
            # One stop marker per worker, behind everything still queued. Markers
            # of an earlier close may have been drained above: spares are harmless.
            for _ in self._threads:
                self._queue.put(None)
            return dropped

    def join(self) -> None:
        """Wait until every worker has exited (not the calling one, if it is a worker)."""
        current = threading.current_thread()
        for thread in list(self._threads):
            if thread is not current:
                thread.join()


def _work_loop(pool: WorkerPool) -> None:
    """A worker thread. It holds the pool, not the dispatcher, so an unused
    dispatcher can be garbage-collected (its finalizer closes the pool)."""
    get = pool._queue.get
    running = pool.running
    lock = pool._lock
    while True:
        current: Work | None = get()
        if current is None:
            return  # the pool is closing and everything queued before is done
        while current is not None:
            if pool.dropping:
                # Taken from the queue just as shutdown(wait=False) emptied it.
                current.drop()
            else:
                running.add(current)
                current.execute()
                running.discard(current)
            gate = current.gate
            following = gate.next() if gate is not None else None
            if following is None:
                # Idle before the outcome is posted: the call it enables, made as
                # soon as the loop sees the outcome, must find this worker free
                # rather than start another thread.
                with lock:
                    pool._idle += 1
            current.inbox.post(current)
            current = following

"""A straggler on demand: one worker of a real cluster made ``factor`` times slower, to
rehearse what a slow machine does to training (``bench/stragglers.py``, the tests)."""
from __future__ import annotations

import time
from concurrent.futures import Executor

from distributed import WorkerPlugin

# ----------------------------------------------------------------------------- plugin


class SlowedThreadPoolExecutor(Executor):
    """Runs each call on ``inner`` (the worker's thread pool), then sleeps ``factor - 1``
    times the call's own wall time on the same thread, so the task ends ``factor`` times
    later and its thread stays taken meanwhile.  (Dask runs tasks with their context on an
    executor whose type name has "ThreadPoolExecutor" in it.)"""

    def __init__(self, inner: Executor, factor: float):
        self.inner, self.factor = inner, float(factor)

    def submit(self, fn, /, *args, **kwargs):
        def slowed():
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                time.sleep((self.factor - 1.0) * (time.perf_counter() - start))
        return self.inner.submit(slowed)

    def shutdown(self, wait: bool = True, **kwargs) -> None:
        self.inner.shutdown(wait=wait, **kwargs)


class SlowWorker(WorkerPlugin):
    """Makes the worker at ``address`` ``factor`` (>= 1) times slower at every task.

    ``client.register_plugin(SlowWorker(address, 4))`` wraps that worker's task
    executor in a :class:`SlowedThreadPoolExecutor`: each task sleeps, after it
    computed, ``factor - 1`` times its own compute time.  Other workers are left
    alone; ``client.unregister_worker_plugin(SlowWorker.name)`` restores it.  A
    sleeping worker frees its core: on a machine with fewer cores than
    workers, the others run faster meanwhile, unlike beside a truly slow
    machine (a slow disk, a busy co-tenant, throttled CPUs).
    """

    name = "terafeat-slow-worker"

    def __init__(self, address: str, factor: float):
        if not factor >= 1:
            raise ValueError(f"SlowWorker factor must be >= 1, got {factor!r}")
        self.address, self.factor = address, float(factor)
        self._inner = None

    def setup(self, worker) -> None:
        if worker.address == self.address:
            self._inner = worker.executors["default"]
            worker.executors["default"] = SlowedThreadPoolExecutor(self._inner, self.factor)

    def teardown(self, worker) -> None:
        if self._inner is not None:
            worker.executors["default"] = self._inner
            self._inner = None

"""BLAS threads, for numbers that do not depend on the machine.

A multi-threaded BLAS (OpenBLAS) rounds the same product differently for each
thread count: a float32 whitening or RICA fit on 1 and on 2 threads ends with
different bits, and L-BFGS carries the difference on to other filters.  Code
whose results must be the same on every machine runs its products on one BLAS
thread (``one_blas_thread``) and gets its parallelism from its own threads
over independent blocks, added in a fixed order (``learning.rica_objective``).  On busy
cores its own threads can lose to one thread too: ``FasterThreadCount`` picks between
them by measured time, call by call.
"""
from __future__ import annotations

import functools
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_controller = {"modules": -1, "controller": None}


def _blas_libraries() -> ThreadpoolController:
    """The thread pools of every BLAS loaded so far.  numpy, scipy and OpenCV each load their
    own; a library is loaded by an import, so the list is read again when ``sys.modules``
    has grown (reading it costs milliseconds; limiting it, microseconds)."""
    if len(sys.modules) != _controller["modules"]:
        _controller["controller"] = ThreadpoolController()
        _controller["modules"] = len(sys.modules)
    return _controller["controller"]


def blas_threads() -> int:
    """The number of BLAS threads in force now (``OPENBLAS_NUM_THREADS`` or the cores)."""
    return max([info["num_threads"] for info in _blas_libraries().info()
                if info["user_api"] == "blas"], default=1)


def one_blas_thread():
    """Context manager: every loaded BLAS on one thread inside (the previous limits
    restored on exit)."""
    return _blas_libraries().limit(limits=1, user_api="blas")


@functools.cache
def thread_pool(n_threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``n_threads`` threads for independent blocks (idle between calls)."""
    return ThreadPoolExecutor(n_threads, thread_name_prefix="terafeat-blocks")


class FasterThreadCount:
    """Chooses, call by call, between one thread and ``most`` threads for a computation
    repeated on the same data (or on data of any size, timed per unit of work), by the
    wall time each choice last took.

    The first two calls try ``most`` then one thread; after that each call takes the
    choice that was faster, and every ``probe_every``-th call tries the other again, so
    the choice follows the machine's load (a threaded kernel on busy cores can be slower
    than one thread).  Only for computations whose result does not depend on the thread
    count.  ``most`` <= 1 always gives one thread.
    """

    def __init__(self, most: int, probe_every: int = 16):
        self.most = max(1, int(most))
        self.probe_every = int(probe_every)
        self.seconds = {self.most: None, 1: None}
        self.calls = 0

    def next(self) -> int:
        """The thread count for the next call."""
        if self.most == 1:
            return 1
        untried = [count for count, seconds in self.seconds.items() if seconds is None]
        if untried:
            return untried[0]
        faster = min(self.seconds, key=self.seconds.get)
        if self.calls % self.probe_every == 0:
            return self.most if faster == 1 else 1
        return faster

    @contextmanager
    def timed(self, units: float = 1.0):
        """Context manager yielding the thread count to use; records the block's wall time
        per unit of work (``units`` > 0: e.g. the images it encodes)."""
        count = self.next()
        started = time.perf_counter()
        yield count
        self.seconds[count] = (time.perf_counter() - started) / units
        self.calls += 1

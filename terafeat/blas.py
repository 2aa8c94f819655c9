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

import time
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_CONTROLLER = ThreadpoolController()


def blas_threads() -> int:
    """The number of BLAS threads in force now (``OPENBLAS_NUM_THREADS`` or the cores)."""
    return max([info["num_threads"] for info in _CONTROLLER.info() if info["user_api"] == "blas"],
               default=1)


def one_blas_thread():
    """Context manager: BLAS on one thread inside (the previous limits restored on exit)."""
    return _CONTROLLER.limit(limits=1, user_api="blas")


class FasterThreadCount:
    """Chooses, call by call, between one thread and ``most`` threads for a computation
    repeated on the same data, by the wall time each choice last took.

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
    def timed(self):
        """Context manager yielding the thread count to use; records the block's wall time."""
        count = self.next()
        started = time.perf_counter()
        yield count
        self.seconds[count] = time.perf_counter() - started
        self.calls += 1

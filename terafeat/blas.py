"""BLAS threads, for numbers that do not depend on the machine.

A multi-threaded BLAS (OpenBLAS) rounds the same product differently for each
thread count: a float32 whitening or RICA fit on 1 and on 2 threads ends with
different bits, and L-BFGS carries the difference on to other filters.  Code
whose results must be the same on every machine runs its products on one BLAS
thread (``one_blas_thread``) and gets its parallelism from its own threads
over independent blocks, added in a fixed order (``learning.rica_objective``).
"""
from __future__ import annotations

from threadpoolctl import ThreadpoolController

_CONTROLLER = ThreadpoolController()


def blas_threads() -> int:
    """The number of BLAS threads in force now (``OPENBLAS_NUM_THREADS`` or the cores)."""
    return max([info["num_threads"] for info in _CONTROLLER.info() if info["user_api"] == "blas"],
               default=1)


def one_blas_thread():
    """Context manager: BLAS on one thread inside (the previous limits restored on exit)."""
    return _CONTROLLER.limit(limits=1, user_api="blas")

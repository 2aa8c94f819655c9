"""The Dask client: a local cluster sized to the machine, or an existing scheduler."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence

from distributed import Client, LocalCluster, WorkerPlugin
from distributed.comm.addressing import parse_address, parse_host_port

logger = logging.getLogger(__name__)
#: Environment variable naming an existing Dask scheduler (``tcp://host:port``).
DASK_ADDRESS_ENV = "TERAFEAT_DASK_ADDRESS"
#: Where a local cluster's scheduler, workers and (unauthenticated) dashboard listen.
LOOPBACK = "127.0.0.1"
#: Environment of every worker process of a local cluster: one BLAS thread each.
BLAS_ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


class OneBlasThread(WorkerPlugin):
    """Limits a worker's BLAS to one thread when it starts (and when it restarts).

    The environment alone does not: a worker process inherits its parent's
    ``OPENBLAS_NUM_THREADS`` over Dask's ``pre-spawn-environ``, and one set
    after the worker started comes too late for OpenBLAS.  Products on one
    thread are also the same bits on every worker (``terafeat.blas``).
    """

    name = "terafeat-one-blas-thread"

    def setup(self, worker) -> None:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1, "blas")

# ----------------------------------------------------------------------------- cluster

def available_cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def scheduler_address(dask_address: str | None = None) -> str | None:
    """The scheduler a run connects to: ``dask_address``, else ``$TERAFEAT_DASK_ADDRESS``,
    else None (a local cluster)."""
    return dask_address or os.environ.get(DASK_ADDRESS_ENV) or None


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise ConnectionError naming ``address`` unless a TCP connection to it opens within
    ``timeout`` seconds (other protocols are left to the client)."""
    scheme, location = parse_address(address)
    if scheme != "tcp":
        return
    host, port = parse_host_port(location, default_port=8786)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address}: "
                              f"{error.strerror or error}") from None


@contextlib.contextmanager
def get_client(dask_address: str | None = None, n_workers: int | None = None,
               connect_timeout: float = 10.0, **cluster_kwargs) -> Iterator[Client]:
    """A ``distributed.Client``, closed (with any cluster it started) on exit.

    dask_address: scheduler to connect to (``tcp://host:port``); None reads
    ``TERAFEAT_DASK_ADDRESS``, and if that is unset too starts a
    ``LocalCluster`` of ``n_workers`` (default: the usable cores) processes
    with one thread and one BLAS thread each, every socket on 127.0.0.1 (the
    dashboard on port 8787, or a free one; ``cluster_kwargs`` go to
    LocalCluster, e.g. ``dashboard_address="127.0.0.1:0"``).  An unreachable scheduler
    raises ConnectionError naming the address after ``connect_timeout``
    seconds.  The dashboard link is logged.  Every worker runs its BLAS on one
    thread (``OneBlasThread``), on a local or an existing cluster.

    An external cluster (what ``tests/test_distributed.py`` starts)::

        dask scheduler --host 127.0.0.1 --port 8786 &
        dask worker tcp://127.0.0.1:8786 --nthreads 1 &      # one per core/machine
        export TERAFEAT_DASK_ADDRESS=tcp://127.0.0.1:8786     # or dask_address=...

    Shard files must be on storage every worker can read.
    """
    address = scheduler_address(dask_address)
    if address is None:
        options = {"processes": True, "threads_per_worker": 1, "env": dict(BLAS_ONE_THREAD),
                   "host": LOOPBACK, "dashboard_address": f"{LOOPBACK}:8787", **cluster_kwargs}
        with LocalCluster(n_workers=n_workers or available_cores(), **options) as cluster, \
                Client(cluster) as client:
            client.register_plugin(OneBlasThread())
            logger.info("local Dask cluster of %d workers; dashboard: %s",
                        len(cluster.workers), client.dashboard_link)
            yield client
        return
    if n_workers is not None or cluster_kwargs:
        raise ValueError("n_workers and cluster options apply to a local cluster, "
                         f"not to the existing scheduler at {address}")
    try:
        client = Client(address, timeout=connect_timeout)
    except (OSError, TimeoutError, ValueError) as error:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address} within "
                              f"{connect_timeout:g} s: {error}") from error
    with client:
        client.register_plugin(OneBlasThread())
        logger.info("connected to the Dask scheduler at %s (%d workers); dashboard: %s",
                    address, len(client.scheduler_info()["workers"]), client.dashboard_link)
        yield client


def worker_transfer_bytes(client: Client) -> int:
    """Bytes the workers have served so far, to each other or to the scheduler (results
    gathered for the client); cumulative, all workers."""
    sent = client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
    return int(sum(sent.values()))


class WorkerLostError(RuntimeError):
    """Workers holding shards (``addresses``) left the cluster during a computation."""

    def __init__(self, addresses: Sequence[str], detail: str = ""):
        super().__init__(f"lost worker(s) {', '.join(addresses) or '(unknown)'}"
                         + (f"; {detail}" if detail else ""))
        self.addresses = list(addresses)



"""Peak resident memory: of this process, and of a Dask cluster's worker processes."""
from __future__ import annotations

import resource


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far, bytes (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def workers_peak_rss(client) -> int:
    """The largest peak resident memory of the workers of a ``distributed.Client``, bytes
    (each worker process's high-water mark over its life so far); 0 with no workers."""
    return max(client.run(peak_rss_bytes).values(), default=0)

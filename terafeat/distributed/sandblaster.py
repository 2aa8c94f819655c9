"""Sandblaster evaluation (DistBelief; Dean et al., NIPS 2012): a map-reduce over the shards
done as many small work portions that the client hands out as workers free up, with backup
copies of the last unfinished ones, so that one slow worker does not set the pace.  The
portions are summed in a fixed order: the result does not depend on who computed what."""
from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from distributed import Client, wait

from terafeat.distributed.cluster import WorkerLostError
from terafeat.distributed.sharded_data import ShardedData
from terafeat.distributed.shards import portion_bounds, run_portion, sum_partials

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- sharded data


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class SandblasterData(ShardedData):
    """``ShardedData`` whose :meth:`map_reduce` runs in portions, handed out dynamically,
    with backup tasks.

    Each shard's rows are cut into ``portions_per_shard`` contiguous ranges
    (``shards.portion_bounds``); a portion is ``func`` over those rows of the
    shard, on a worker holding it (``shards.run_portion``; shards stay where
    they were loaded).  The client keeps at most ``tasks_per_worker`` portions
    per worker thread in flight and gives a worker its next portion when one of
    its own finishes, so a fast worker takes more than a slow one.  A worker
    takes the pending portions of the shards it was given first, then those of
    its second copies; of the shard with the most pending portions first.

    backup_tasks: each shard is also loaded on a second worker (a worker's
    shards spread over the others), so either holder can take its portions;
    and an idle worker (nothing in flight, no pending portion it can run)
    starts a backup copy of the longest-running unfinished portion of a shard
    it holds, once that portion has been in flight ``backup_after`` times the
    median of the portions kept so far in this evaluation (one backup per
    portion at most).  The first result is kept and the other copy cancelled
    (one already running finishes on its worker, which stays busy, and is
    dropped).  This doubles the workers' memory for shards.  Each portion
    costs a round trip of the client (milliseconds): portions should take
    much longer than that to compute.

    Every portion is counted once and the partials are summed in portion order
    (shard, then rows), so the result is the same bits whichever worker
    computed each portion and whichever copy won (workers on one BLAS thread,
    of one CPU kind); it equals ``ShardedData.map_reduce`` up to the order of
    the sums.  The arguments go out once per portion started, backups
    included; each kept portion's partial comes back to the client (no
    reduction tree).  A lost worker's portions are backed up on other holders
    like a slow worker's; after the evaluation its shards are reloaded as by
    ShardedData (counted in ``n_recoveries``), and second copies on lost
    workers are loaded anew on live ones.  When no live worker holds a
    remaining portion's shard, the evaluation is redone after ShardedData's
    recovery.

    Extra attributes (cumulative): ``n_backup_tasks`` (backup copies started),
    ``n_backups_won`` (portions whose kept result came from a backup),
    ``portions_by_worker`` (Counter: worker address -> portions whose kept
    result it computed); ``copy_locations`` (worker of each shard's second
    copy, or None).
    """

    def __init__(self, client: Client, shard_paths: Sequence, dtype=np.float32,
                 portions_per_shard: int = 4, backup_tasks: bool = True,
                 tasks_per_worker: int = 2, backup_after: float = 1.5, **options):
        self.portions_per_shard = _positive_int("portions_per_shard", portions_per_shard)
        if not backup_after > 0:
            raise ValueError(f"backup_after must be > 0, got {backup_after!r}")
        self.backup_after = float(backup_after)
        self.tasks_per_worker = _positive_int("tasks_per_worker", tasks_per_worker)
        self.backup_tasks = bool(backup_tasks)
        self.copies: list = []
        self.copy_locations: list = []
        self.n_backup_tasks = self.n_backups_won = 0
        self.portions_by_worker: Counter = Counter()
        super().__init__(client, shard_paths, dtype, **options)
        #: (shard index, start row, stop row) of each portion, in summation order
        self.portions = [(shard, start, stop) for shard, rows in enumerate(self.shard_rows)
                         for start, stop in portion_bounds(rows, self.portions_per_shard)]
        self._place_copies(self.load_timeout)

    def close(self) -> None:
        self.client.cancel([copy for copy in self.copies if copy is not None])
        self.copies = []
        super().close()

    def _settle(self, timeout: float) -> None:
        super()._settle(timeout)
        self._place_copies(timeout)

    def _place_copies(self, timeout: float) -> None:
        """Give every shard a second copy on a live worker other than its first holder."""
        if not self.backup_tasks:
            return
        if not self.copies:
            self.copies = [None] * len(self.paths)
        live = self.live_workers()
        holders = self.client.who_has([copy for copy in self.copies if copy is not None])
        seen: Counter = Counter()
        for i, first in enumerate(self.locations):
            # the j-th shard of a worker: its copy on the j-th next worker in address order
            after = [address for address in live if address > first] + [
                address for address in live if address < first]
            target = after[seen[first] % len(after)] if after else None
            seen[first] += 1
            copy = self.copies[i]
            where = sorted(holders.get(copy.key, ())) if copy is not None else []
            if where and where[0] in live and where[0] != first:
                continue
            if copy is not None:
                copy.release()
            self.copies[i] = self._load(self.paths[i], target) if target else None
        loading = [copy for copy in self.copies if copy is not None]
        try:
            wait(loading, timeout=timeout)
        except TimeoutError:
            raise RuntimeError(f"second shard copies not loaded within {timeout:g} s") from None
        for copy in loading:
            if copy.status == "error":
                copy.result()  # the worker's ShardError
        holders = self.client.who_has(loading)
        self.copy_locations = [sorted(holders[copy.key])[0]
                               if copy is not None and holders.get(copy.key) else None
                               for copy in self.copies]

    def holders(self) -> list[dict[str, object]]:
        """Per shard: worker address -> the future of the copy that worker holds."""
        holders = [{where: shard} for shard, where in zip(self.futures, self.locations)]
        for held, copy, where in zip(holders, self.copies, self.copy_locations):
            if copy is not None and where is not None:
                held.setdefault(where, copy)
        return holders

    def _map_reduce_once(self, func: Callable, args: tuple) -> tuple:
        run = _PortionRun(self, func, args)
        try:
            result = run.complete()
        except BaseException:
            self.client.cancel(list(run.running))
            raise
        lost = sorted(set(run.workers).difference(self.live_workers()))
        if lost:  # their portions were backed up elsewhere: the result stands
            self.n_recoveries += 1
            logger.warning("lost worker(s) %s; their portions ran on other holders; "
                           "reloading their shards", ", ".join(lost))
            self._reload_lost(lost)
        return result


class _PortionRun:
    """One Sandblaster map-reduce: the coordinator's state and its loop."""

    def __init__(self, data: SandblasterData, func: Callable, args: tuple):
        self.data, self.func, self.args = data, func, args
        self.holders = data.holders()
        self.workers = sorted({where for held in self.holders for where in held})
        self.slots = {where: data.tasks_per_worker * max(1, data.threads.get(where, 1))
                      for where in self.workers}
        self.arg_bytes = sum(arg.nbytes for arg in args if isinstance(arg, np.ndarray))
        self.pending = list(range(len(data.portions)))
        self.results: dict[int, tuple] = {}
        self.running: dict = {}  # future -> (portion, worker)
        self.copies_of: dict[int, list] = {}  # unfinished portion -> its running copies, by start
        self.backups: set = set()
        self.load: Counter = Counter()
        self.started: dict = {}  # future -> time.monotonic() when submitted
        self.took: list[float] = []  # seconds in flight of the portions kept so far
        self.wake: float | None = None  # when a waiting portion becomes late enough to back up

    def complete(self) -> tuple:
        data = self.data
        self.fill()
        checked = time.monotonic()
        while len(self.results) < len(data.portions):
            if not self.running:
                raise RuntimeError("no live worker holds the shards of the remaining portions")
            timeout = data.poll_interval if self.wake is None else min(
                data.poll_interval, max(1e-3, self.wake - time.monotonic()))
            try:
                wait(list(self.running), timeout=timeout, return_when="FIRST_COMPLETED")
            except TimeoutError:
                if time.monotonic() - checked >= data.poll_interval:
                    checked = time.monotonic()
                    lost = set(self.workers).difference(data.live_workers())
                    if lost:
                        raise WorkerLostError(sorted(lost)) from None
                self.fill()
                continue
            finished = [future for future in self.running if future.done()]
            for future in finished:
                if future.status != "finished":
                    future.result()  # raises the task's error or CancelledError
            self.keep(finished, data.client.gather(finished))
            self.fill()
        return sum_partials(*(self.results[portion] for portion in range(len(data.portions))))

    def keep(self, finished: list, partials: list) -> None:
        """Record the first result of each portion; cancel its other copies."""
        data, duplicates = self.data, []
        for future, partial in zip(finished, partials):
            if future not in self.running:
                continue  # a duplicate of a portion kept earlier in this round
            portion, where = self.running.pop(future)
            self.load[where] -= 1
            self.results[portion] = partial
            self.took.append(time.monotonic() - self.started[future])
            data.portions_by_worker[where] += 1
            data.n_backups_won += future in self.backups
            data.bytes_in += sum(item.nbytes if isinstance(item, np.ndarray) else 8
                                 for item in partial)
            for other in self.copies_of.pop(portion):
                if other is not future and other in self.running:
                    self.load[self.running.pop(other)[1]] -= 1
                    duplicates.append(other)
        if duplicates:
            data.client.cancel(duplicates)

    def fill(self) -> None:
        """Give every worker pending portions up to its slots; an idle one, a backup copy."""
        self.wake = None
        for where in self.workers:
            while self.load[where] < self.slots[where]:
                portion = self.next_pending(where)
                backup = portion is None
                if backup and self.data.backup_tasks and not self.load[where]:
                    portion = self.next_backup(where)
                if portion is None:
                    break
                self.submit(portion, where, backup)

    def next_pending(self, where: str) -> int | None:
        """A pending portion of a shard ``where`` holds, of the shard with the most pending
        portions (so a worker's portions in flight come from different shards), a shard
        it was given first before a second copy."""
        left = Counter(self.data.portions[portion][0] for portion in self.pending)
        held = [portion for portion in self.pending
                if where in self.holders[self.data.portions[portion][0]]]
        return min(held, default=None, key=lambda portion: (
            self.data.locations[self.data.portions[portion][0]] != where,
            -left[self.data.portions[portion][0]], portion))

    def next_backup(self, where: str) -> int | None:
        """The longest-running portion with one copy, elsewhere, of a shard ``where`` holds,
        if it has been in flight ``backup_after`` times the median of the kept portions."""
        if not self.took:
            return None
        late = self.data.backup_after * statistics.median(self.took)
        for portion, copies in self.copies_of.items():
            if (len(copies) == 1 and self.running[copies[0]][1] != where
                    and where in self.holders[self.data.portions[portion][0]]):
                due = self.started[copies[0]] + late
                if due <= time.monotonic():
                    return portion
                self.wake = due if self.wake is None else min(self.wake, due)
                return None
        return None

    def submit(self, portion: int, where: str, backup: bool) -> None:
        data = self.data
        shard, start, stop = data.portions[portion]
        future = data.client.submit(run_portion, self.func, self.args, self.holders[shard][where],
                                    start, stop, workers=[where], allow_other_workers=False,
                                    pure=False)
        self.running[future] = (portion, where)
        self.started[future] = time.monotonic()
        self.copies_of.setdefault(portion, []).append(future)
        self.load[where] += 1
        data.bytes_out += self.arg_bytes
        if backup:
            self.backups.add(future)
            data.n_backup_tasks += 1
        else:
            self.pending.remove(portion)

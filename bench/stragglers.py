"""Stragglers: distributed L-BFGS with one of three workers 4x slower, with and without
Sandblaster backup tasks, beside the undisturbed run.

Run from the repository root::

    python bench/stragglers.py            # 3-8 min on 2 busy cores
    python bench/stragglers.py --quick    # smoke run: m / 4, 4 iterations, 1 fit each

What it simulates: one machine of three that is ``--factor`` times slower than the
others at everything it does (a slow disk, a busy co-tenant, a throttled CPU),
made with ``terafeat.distributed.slow_worker.SlowWorker``: after each task that
worker sleeps ``factor - 1`` times the task's own compute time.  A sleeping worker
frees its core, so on a machine with fewer cores than workers (this one has 2 for
3 workers) the other workers compute faster while it sleeps than beside a really
slow machine; with one dedicated core per worker the best any schedule can do is
``n / (n - 1 + 1/factor)`` of the undisturbed time (printed), since the slow
worker's lost capacity is gone whoever takes its work.

Data: m=600,000 synthetic whitened patches (``bench/distributed_scaling.py``'s
generator, seed 0), d=64, in 6 shards of 100,000 rows (2 per worker), float32;
RICA k=256, lam=0.1, eps=1e-2, random start (seed 0).  One LocalCluster of 3
worker processes (1 thread, 1 BLAS thread each).

* static: ``DistributedRICA`` as before, one task per worker per evaluation;
* backup: ``portions_per_shard=2, backup_tasks=True`` (Sandblaster: 12 portions
  per evaluation handed out as workers free up, a second copy of each shard on
  the next worker, backup copies of the last unfinished portions).

Each configuration is timed undisturbed and with worker 0 slowed: the median
wall time of ``--repeats`` evaluations at a fixed W (the configurations
interleaved), and the whole fit (``--iterations`` L-BFGS iterations, shard
loading included; the least of ``--fits`` runs, interleaved, as the machine is
shared).  Also the static
evaluation in float64 beside float32 (bytes and time: "single vs double"), and,
undisturbed, map-reduce vs actor RPC for the same evaluation: ``ShardedData``'s
one task per worker per evaluation vs one Dask actor per worker holding its
shards, called once per evaluation (``bench/actor_evaluation.py``), interleaved
with the others; with the round trip of a call that does nothing either way.
Printed: the ratios to the undisturbed static fit, whether W and the objective
history of the slowed backup fit are the same bits as the undisturbed backup
fit's, and the distance to the static fit's W.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.actor_evaluation import ActorRicaLoss, task_round_trip_seconds  # noqa: E402
from bench.distributed_scaling import make_patches  # noqa: E402
from bench.results import record  # noqa: E402
from terafeat.distributed.cluster import get_client  # noqa: E402
from terafeat.distributed.lbfgs import DistributedRICA  # noqa: E402
from terafeat.distributed.sandblaster import SandblasterData  # noqa: E402
from terafeat.distributed.sharded_data import DistributedRicaLoss, ShardedData  # noqa: E402
from terafeat.distributed.shards import write_shards  # noqa: E402
from terafeat.distributed.slow_worker import SlowWorker  # noqa: E402
from terafeat.learning.rica import normalize_rows  # noqa: E402

LAM, EPS, SEED, WORKERS = 0.1, 1e-2, 0, 3
CONFIGS = {"static": {}, "backup": {"portions_per_shard": 2, "backup_tasks": True}}


def evaluation_seconds(client, paths, dtype, W, repeats: int, actors: bool = False) -> dict:
    """Per configuration: wall times of ``repeats`` evaluations at W, the configurations
    interleaved (after one warm-up each), and the client bytes of one; with ``actors``
    also the evaluation by actor RPC ("actor rpc", checked against the static one) and
    the round trips of calls that do nothing ("round_trip_s")."""
    datas = {name: (SandblasterData if config else ShardedData)(client, paths, dtype, **config)
             for name, config in CONFIGS.items()}
    rpc = None
    try:
        losses = {name: DistributedRicaLoss(data, LAM, EPS) for name, data in datas.items()}
        if actors:
            rpc = losses["actor rpc"] = ActorRicaLoss(client, paths, dtype, losses["static"].C,
                                                      LAM, EPS)
            np.testing.assert_allclose(rpc(W.astype(dtype))[1], losses["static"](W.astype(dtype))[1],
                                       rtol=1e-4, atol=1e-5)
        seconds = {name: [] for name in losses}
        for loss in losses.values():
            loss(W.astype(dtype))
        for _ in range(repeats):
            for name, loss in losses.items():
                start = time.perf_counter()
                loss(W.astype(dtype))
                seconds[name].append(time.perf_counter() - start)
        timings = {name: {"median_s": statistics.median(seconds[name]), "min_s": min(seconds[name]),
                          "bytes": losses[name].bytes_per_evaluation} for name in losses}
        if actors:
            timings["round_trip_s"] = {"task": task_round_trip_seconds(client, 5 * repeats),
                                       "actor": rpc.round_trip_seconds(5 * repeats)}
        return timings
    finally:
        for data in datas.values():
            data.close()
        if rpc is not None:
            rpc.close()


def fit(client, paths, config: dict, args) -> tuple[DistributedRICA, float]:
    start = time.perf_counter()
    model = DistributedRICA(n_features=args.features, lam=LAM, eps=EPS, max_iter=args.iterations,
                            random_state=SEED, client=client, **config).fit(paths)
    return model, time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=600_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--factor", type=float, default=4.0, help="how much slower worker 0 is")
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=7, help="evaluations per configuration")
    parser.add_argument("--fits", type=int, default=2, help="fits per configuration")
    parser.add_argument("--quick", action="store_true", help="m / 4, 4 iterations, 3 repeats, 1 fit")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_samples, args.iterations, args.repeats, args.fits = args.n_samples // 4, 4, 3, 1
    X = make_patches(args.n_samples, args.dim)
    W = normalize_rows(np.random.default_rng(SEED).standard_normal((args.features, args.dim)))[0]
    evaluations, fits, models = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="stragglers-") as folder, \
            get_client(n_workers=WORKERS, dashboard_address="127.0.0.1:0") as client:
        paths = write_shards(X, folder, args.n_samples // (2 * WORKERS))
        slow = sorted(client.scheduler_info()["workers"])[0]
        evaluations["static float64"] = evaluation_seconds(
            client, paths, np.float64, W, args.repeats)["static"]
        for repeat in range(args.fits):
            for slowed in (False, True):
                state = "slowed" if slowed else "undisturbed"
                if slowed:
                    client.register_plugin(SlowWorker(slow, args.factor))
                if repeat == 0:
                    for name, timing in evaluation_seconds(client, paths, np.float32, W,
                                                           args.repeats, not slowed).items():
                        evaluations[f"{name} {state}"] = timing
                for name, config in CONFIGS.items():
                    run = f"{name} {state}"
                    model, seconds = fit(client, paths, config, args)
                    models.setdefault(run, []).append(model)
                    fits.setdefault(run, []).append(seconds)
                    print(f"{run}: evaluation {evaluations[run]['median_s']:.3f} s (median), "
                          f"fit {seconds:.1f} s", flush=True)
                if slowed:
                    client.unregister_worker_plugin(SlowWorker.name)

    base_eval = evaluations["static undisturbed"]["median_s"]
    base_fit = min(fits["static undisturbed"])
    print(f"\nm={args.n_samples:,} d={args.dim} k={args.features} float32, {len(paths)} shards, "
          f"{WORKERS} workers, worker 0 x{args.factor:g} slower when slowed, "
          f"{args.iterations} iterations; evaluation: median of {args.repeats} (interleaved), "
          f"fit: least of {args.fits}")
    print(f"{'run':<20} {'eval s':>8} {'x static':>9} {'fit s':>7} {'x static':>9} "
          f"{'bytes/eval':>11} {'backups (won)':>14}  portions kept by worker 0/1/2")
    values = {"m": args.n_samples, "d": args.dim, "k": args.features, "factor": args.factor,
              "iterations": args.iterations, "workers": WORKERS, "runs": {}}
    for run, runs in models.items():
        model, evaluation, fit_s = runs[-1], evaluations[run], min(fits[run])
        done = [model.portions_by_worker_[where] for where in sorted(model.portions_by_worker_)]
        print(f"{run:<20} {evaluation['median_s']:>8.3f} "
              f"{evaluation['median_s'] / base_eval:>9.2f} {fit_s:>7.1f} {fit_s / base_fit:>9.2f} "
              f"{evaluation['bytes']:>11,} {model.n_backup_tasks_:>7} ({model.n_backups_won_:>4})  "
              f"{'/'.join(map(str, done)) or '-'}")
        values["runs"][run] = {"evaluation": evaluation, "fit_s": fits[run],
                               "training_s": [float(each.times_[-1]) for each in runs],
                               "evaluation_ratio": evaluation["median_s"] / base_eval,
                               "fit_ratio": fit_s / base_fit, "n_iter": model.n_iter_,
                               "n_backup_tasks": model.n_backup_tasks_,
                               "n_backups_won": model.n_backups_won_,
                               "portions_by_worker": done}
    double = evaluations["static float64"]
    single = evaluations["static undisturbed"]
    print(f"single vs double (static, undisturbed): {single['median_s']:.3f} s / "
          f"{single['bytes']:,} B vs {double['median_s']:.3f} s / {double['bytes']:,} B per "
          f"evaluation (float64/float32: x{double['median_s'] / single['median_s']:.2f} time, "
          f"x{double['bytes'] / single['bytes']:.2f} bytes)")
    values["float64_evaluation"] = double
    rpc, trips = evaluations["actor rpc undisturbed"], evaluations["round_trip_s undisturbed"]
    print(f"map-reduce vs actor RPC (undisturbed, float32): {single['median_s']:.3f} s / "
          f"{single['bytes']:,} B vs {rpc['median_s']:.3f} s / {rpc['bytes']:,} B per evaluation "
          f"(RPC/map-reduce x{rpc['median_s'] / single['median_s']:.2f} time, minima "
          f"x{rpc['min_s'] / single['min_s']:.2f}); a round that does nothing: "
          f"{1e3 * trips['task']:.1f} ms by tasks, {1e3 * trips['actor']:.1f} ms by actor calls")
    values.update(actor_rpc_evaluation=rpc, map_reduce_evaluation=single, round_trip_s=trips)

    backups = models["backup slowed"] + models["backup undisturbed"]
    same_bits = all(np.array_equal(model.W_, backups[0].W_)
                    and np.array_equal(model.objective_, backups[0].objective_) for model in backups)
    statics = models["static slowed"] + models["static undisturbed"]
    static_same = all(np.array_equal(model.W_, statics[0].W_) for model in statics)
    W_static = statics[0].W_
    distance = float(np.linalg.norm(backups[0].W_ - W_static) / np.linalg.norm(W_static))
    print(f"W and objective history of every backup fit, slowed or not: "
          f"{'the same bits' if same_bits else 'DIFFERENT'}; W of every static fit: "
          f"{'the same bits' if static_same else 'DIFFERENT'}; ||W_backup - W_static|| / "
          f"||W_static|| = {distance:.1e}")
    with_backups = min(fits["backup slowed"]) / base_fit
    without = min(fits["static slowed"]) / base_fit
    bound = WORKERS / (WORKERS - 1 + 1 / args.factor)
    print(f"slowed fit / undisturbed static fit: with backup tasks x{with_backups:.2f} "
          f"(target <= 1.3: {'PASS' if with_backups <= 1.3 else 'FAIL'}), without x{without:.2f} "
          f"(target >= 2: {'PASS' if without >= 2 else 'FAIL'}); best possible on dedicated "
          f"cores x{bound:.2f}")
    values.update(same_bits_backup=bool(same_bits), same_bits_static=bool(static_same),
                  W_backup_vs_static=distance, fit_ratio_with_backups=with_backups,
                  fit_ratio_without_backups=without, dedicated_core_bound=bound)
    record("stragglers", values,
           peer="the undisturbed static fit (one task per worker per evaluation) on the same "
                "cluster, in the same run",
           notes=f"slowness: worker 0 sleeps {args.factor - 1:g}x each task's compute time; "
                 f"{WORKERS} workers on the machine's cores")
    return values


if __name__ == "__main__":
    main()

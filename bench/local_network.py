"""Locally connected layer: throughput and communication of model parallelism (tiles)
and Downpour data parallelism (replicas) on Dask, against one process; and the
measured cost per connection extrapolated to the ICML 2012 network.

Run from the repository root::

    OPENBLAS_NUM_THREADS=1 python bench/local_network.py           # ~3 min on 2 busy cores
    OPENBLAS_NUM_THREADS=1 python bench/local_network.py --quick   # smoke run

Data: ``--frames`` unlabelled grey frames (bundled natural images with 10% lfw
faces, ``terafeat.analysis.face_data.training_frames``), ``--size`` pixels square, made
network input by local contrast normalisation, written as 4 shards.  Layer:
``--field`` x ``--field`` receptive fields every ``--stride`` pixels,
``--maps`` maps per location, L2 pooling 3 x 3, float32, Adagrad, batches of
``--batch`` frames, ``--steps`` steps per replica.

Runs, each timed over its steps (setup excluded): the single process
(``backend="local"``, one partition, one replica, one BLAS thread: what one
worker gets) before and after the others (ratios are to the faster of the two,
as the machine is shared), and between them on a LocalCluster of 2 worker processes (one thread and one
BLAS thread each) 1 and 2 partitions x 1 and 2 replicas.  Printed: frames per
second (all replicas), its ratio to the single process, and per replica step
the tiles' border bytes (geometry), the parameter-server bytes (pushes and
fetches; 0 with one replica) and what the workers really served (Dask's
counters: borders and results, not actor calls).

Projection: seconds per (connection x frame) of the single process times the
ICML 2012 network's 1e9 connections and 10 million 200x200 frames (one pass),
in core-hours, beside the paper's 16,000 cores x 3 days.  It assumes the cost
grows linearly with connections and frames, and one core per process as here.
"""
from __future__ import annotations

import argparse
import tempfile

from threadpoolctl import threadpool_limits

from reporting.pages.local_network import PAPER
from terafeat.analysis.face_data import training_frames
from terafeat.datasets.bundled import grey_images
from terafeat.distributed.cluster import get_client
from terafeat.distributed.shards import write_shards
from terafeat.locally_connected.geometry import LayerGeometry
from terafeat.locally_connected.network import network_input
from terafeat.locally_connected.parallel import train_layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small layer, few steps")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--field", type=int, default=10)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--maps", type=int, default=8)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    if args.quick:
        args.size, args.frames, args.steps = 48, 96, 4
    frames, _ = training_frames(grey_images(), args.frames, args.size, 0.1, random_state=0)
    inputs = network_input(frames, 5)
    geometry = LayerGeometry(inputs.shape[1:], args.field, args.stride, args.maps, pool=3)
    print(f"layer: {args.size}x{args.size} frames, {geometry.grid[0]}x{geometry.grid[1]} fields of "
          f"{args.field}x{args.field} every {args.stride} px, {args.maps} maps: "
          f"{geometry.n_connections:,} connections, {geometry.n_parameters:,} parameters "
          f"({geometry.n_parameters * 4 / 2**20:.1f} MiB float32)")
    options = dict(steps=args.steps, batch_size=args.batch, seed=0, learning_rate=0.05)
    rows = []
    with tempfile.TemporaryDirectory(prefix="local-bench-") as folder:
        shards = write_shards(inputs.reshape(len(inputs), -1), folder, -(-len(inputs) // 4))

        def single_process():
            with threadpool_limits(1, "blas"):
                return train_layer(shards, geometry, **options)

        single_process()  # warm-up
        rows.append(("single process (before)", single_process()))
        with get_client(n_workers=2, dashboard_address="127.0.0.1:0") as client:
            for partitions in (1, 2):
                for replicas in (1, 2):
                    result = train_layer(shards, geometry, partitions=partitions,
                                         replicas=replicas, client=client, **options)
                    rows.append((f"dask {partitions} partition(s) x {replicas} replica(s)", result))
        rows.append(("single process (after)", single_process()))
    # the less disturbed of the two single-process runs is the reference
    single = max((result for name, result in rows if name.startswith("single")),
                 key=lambda result: result.frames_per_second)
    print(f"\n{'run':<34} {'frames/s':>9} {'ratio':>6} {'border B/step':>14} "
          f"{'param B/step':>13} {'served B/step':>14}")
    for name, result in rows:
        served = result.measured_transfer_per_step
        print(f"{name:<34} {result.frames_per_second:9.2f} "
              f"{result.frames_per_second / single.frames_per_second:6.2f} "
              f"{result.border_bytes_per_step:14,d} {result.parameter_bytes_per_step:13,.0f} "
              f"{'-' if served is None else f'{served:,.0f}':>14}")
    per_connection_frame = single.seconds / (args.steps * args.batch * geometry.n_connections)
    core_hours = per_connection_frame * PAPER["connections"] * PAPER["frames"] / 3600
    paper_core_hours = PAPER["cores"] * PAPER["days"] * 24
    print(f"\nmeasured: {per_connection_frame * 1e9:.3f} ns per connection per frame "
          f"(forward, backward and update, one core)")
    print(f"projection, ICML 2012 network ({PAPER['connections']:.0e} connections, "
          f"{PAPER['frames']:.0e} {PAPER['frame_side']}x{PAPER['frame_side']} frames, one pass): "
          f"{core_hours:,.0f} core-hours = {core_hours / paper_core_hours:.2f} x the paper's "
          f"{PAPER['cores']:,} cores x {PAPER['days']} days = {paper_core_hours:,} core-hours")


if __name__ == "__main__":
    main()

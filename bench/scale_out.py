"""Scale-out projection: one evaluation of the ICML 2012 face-neuron network (about 1e9
connections, 10 million 200x200 frames) on 100, 1,000 and 16,000 cores, from a time model
whose inputs are measured here, printed beside the paper's 16,000 cores x 3 days.

Run from the repository root::

    python bench/scale_out.py            # ~2 min on 2 busy cores
    python bench/scale_out.py --quick    # smoke run: fewer repeats

The model of one Sandblaster evaluation (objective and gradient over every
frame once, in portions handed out by a coordinator) on N cores::

    t(N) = compute + coordination + bytes per machine / bandwidth + rounds x latency
    compute      = portions per replica x (a + b x frames per portion x connections / cores per replica)
    coordination = portions x c                  (the coordinator hands out portions one by one)
    bytes        = parameters fetched and gradients pushed (4 B each, / model-parallel split)
                 + the model-parallel borders of every frame the machine's replica sees
    latency      = portions per replica x layers x (actor round trip + network latency)
                   (one border exchange per layer, machine to machine)
                 + 2 x (task round trip + network latency)  (fetch, push)

Measured in this run (the inputs, printed):

* compute per portion: ``locally_connected.tile_objective.layer_objective``
  (forward, backward, one layer, float32, one BLAS thread) on portions of
  4-32 frames of a small layer with the paper's receptive fields (36x36 grey
  input, 18x18 fields every pixel, 8 maps, pool 5); least squares
  ``seconds = a + b' x frames`` (least of the repeats: the least disturbed on a
  shared machine), b = b' / its connections: seconds per
  connection-frame (shown as FLOP/s with 10 FLOP per connection-frame:
  encoding, decoding and three gradient products, 2 each);
* latency: the median round trip of a task that does nothing on a 2-worker
  LocalCluster (127.0.0.1), and of an actor call (``bench/actor_evaluation.py``);
* coordination c: seconds per task of 400 no-op tasks submitted at once;
* loopback bandwidth: a 32 MiB array gathered from a worker (shown, not used
  for the projection: it is not a network);
* a check of the model on this machine: a Sandblaster-like evaluation of the
  small layer, portions of 8 frames as tasks on the 2 workers, V sent once,
  predicted from the fitted inputs (with the loopback bandwidth) beside measured.

Assumed (printed with their values): 16 cores per machine (the paper's 1,000
machines for 16,000 cores); 1 Gbit/s per machine, full duplex; 0.1 ms network
latency added to the measured round trip; model-parallel split of 16 machines
per replica (fewer when there are fewer machines), tiled in bands of rows
(``Tiling``) on every layer; portions of 100 frames; the network as three
stages of 18x18 fields every pixel, 8 maps, pool 5 on 200x200 grey frames
(``stack_geometries``: 1.04e9 connections, papers.md's "about 1 billion");
compute cost linear in connections; no overlap of compute and communication
(an upper bound); frames read from local disk (not counted).  The outputs per
scale: every term, the total, and how many evaluations (passes over the 10
million frames) 3 days allow.  Results: ``bench/results/scale_out.json``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.actor_evaluation import (  # noqa: E402
    ShardHolder,
    actor_round_trip_seconds,
    task_round_trip_seconds,
)
from bench.results import record  # noqa: E402
from reporting.pages.local_network import PAPER  # noqa: E402
from terafeat.distributed.cluster import get_client, worker_transfer_bytes  # noqa: E402
from terafeat.locally_connected.geometry import LayerGeometry, Tiling, stack_geometries  # noqa: E402
from terafeat.locally_connected.tile_objective import initial_weights, layer_objective  # noqa: E402

SCALES = (100, 1_000, 16_000)
FLOP_PER_CONNECTION_FRAME = 10
ASSUMPTIONS = {
    "cores_per_machine": 16,
    "bandwidth_bytes_per_s": 1e9 / 8,
    "network_latency_s": 1e-4,
    "replica_machines": 16,
    "portion_frames": 100,
    "bytes_per_value": 4,
    "network": {"input": [200, 200, 1], "fields": [18, 18, 18], "strides": [1, 1, 1],
                "maps": [8, 8, 8], "pool": 5},
}
SMALL_LAYER = LayerGeometry((36, 36, 1), field=18, stride=1, maps=8, pool=5)


def least_seconds(call, repeats: int) -> float:
    """The least wall time of ``repeats`` calls: the least disturbed on a shared machine."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return min(seconds)


def portion_compute(frames: np.ndarray, V: np.ndarray, sizes, repeats: int) -> dict:
    """Least-squares fit ``seconds = a + b' x frames`` of one layer objective on portions."""
    with threadpool_limits(1, "blas"):
        layer_objective(V, frames[:sizes[0]], SMALL_LAYER)  # warm-up
        seconds = [least_seconds(lambda n=n: layer_objective(V, frames[:n], SMALL_LAYER), repeats)
                   for n in sizes]
    slope, intercept = np.polyfit(sizes, seconds, 1)
    per_connection_frame = slope / SMALL_LAYER.n_connections
    return {"portion_frames": list(sizes), "portion_s": seconds, "intercept_s": float(intercept),
            "seconds_per_connection_frame": float(per_connection_frame),
            "flop_per_s": FLOP_PER_CONNECTION_FRAME / per_connection_frame,
            "connections": SMALL_LAYER.n_connections}


def cluster_costs(client, repeats: int) -> dict:
    """Round trips of a task and of an actor call, per-task coordination, loopback bandwidth."""
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    futures = [client.submit(ShardHolder, [], np.float32, actor=True, workers=[where])
               for where in workers]
    holders = [future.result(60) for future in futures]
    task_round_trip_seconds(client, 3)  # warm-up
    trips = {"task_s": task_round_trip_seconds(client, repeats),
             "actor_s": actor_round_trip_seconds(holders, repeats)}
    client.cancel(futures)
    n_tasks = 400
    start = time.perf_counter()
    client.gather([client.submit(int, i, pure=False) for i in range(n_tasks)])
    per_task = (time.perf_counter() - start) / n_tasks
    block = client.scatter(np.ones(2**23, np.float32), workers=workers[:1])
    bandwidth = block.result().nbytes / least_seconds(lambda: block.result(), 3)
    return {"round_trip_s": trips, "coordination_s_per_task": per_task,
            "loopback_bytes_per_s": bandwidth}


def model_check(client, frames: np.ndarray, V: np.ndarray, compute: dict, costs: dict,
                portion: int, repeats: int) -> dict:
    """A Sandblaster-like evaluation of the small layer on the cluster, predicted vs measured:
    one task per portion, the portions spread over the workers, V sent to each worker."""
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    chunks = [client.scatter(frames[i:i + portion], workers=[workers[j % len(workers)]])
              for j, i in enumerate(range(0, len(frames), portion))]
    where = [workers[j % len(workers)] for j in range(len(chunks))]

    def evaluate():
        shared = client.scatter(V, broadcast=True, hash=False)
        parts = [client.submit(layer_objective, shared, chunk, SMALL_LAYER, workers=[w], pure=False)
                 for chunk, w in zip(chunks, where)]
        return sum(grad for _, grad in client.gather(parts))

    evaluate()  # warm-up
    served = worker_transfer_bytes(client)
    measured = least_seconds(evaluate, repeats)
    served = (worker_transfer_bytes(client) - served) / repeats
    per_worker = -(-len(chunks) // len(workers))
    moved = (len(workers) + len(chunks)) * V.nbytes
    predicted = {
        "compute_s": per_worker * (compute["intercept_s"] + compute["seconds_per_connection_frame"]
                                   * SMALL_LAYER.n_connections * portion),
        "coordination_s": len(chunks) * costs["coordination_s_per_task"],
        "bytes_s": moved / costs["loopback_bytes_per_s"],
        "latency_s": costs["round_trip_s"]["task_s"]}
    return {"portions": len(chunks), "portion_frames": portion, "bytes": moved,
            "workers_served_bytes": served, "predicted": predicted,
            "predicted_s": sum(predicted.values()), "measured_s": measured,
            "measured_over_predicted": measured / sum(predicted.values())}


def network_layers() -> list[LayerGeometry]:
    spec = ASSUMPTIONS["network"]
    return stack_geometries(tuple(spec["input"]), spec["fields"], spec["strides"], spec["maps"],
                            pool=spec["pool"])


def project(cores: int, layers: list[LayerGeometry], compute: dict, costs: dict) -> dict:
    """Every term of one evaluation's time on ``cores`` cores (seconds), the model above."""
    a = ASSUMPTIONS
    connections = sum(layer.n_connections for layer in layers)
    parameters = sum(layer.n_parameters for layer in layers)
    machines = cores / a["cores_per_machine"]
    split = min(a["replica_machines"], machines)
    tiles = max(1, round(split))
    replicas = machines / split
    portions = PAPER["frames"] / a["portion_frames"]
    per_replica = portions / replicas
    compute_s = per_replica * (compute["intercept_s"] + compute["seconds_per_connection_frame"]
                               * a["portion_frames"] * connections / (split * a["cores_per_machine"]))
    border_per_frame = sum(Tiling(layer, tiles).border_bytes(1, a["bytes_per_value"])
                           for layer in layers) / tiles
    parameter_bytes = 2 * parameters * a["bytes_per_value"] / split
    border_bytes = PAPER["frames"] / replicas * border_per_frame
    trips = costs["round_trip_s"]
    terms = {"compute_s": compute_s,
             "coordination_s": portions * costs["coordination_s_per_task"],
             "parameter_bytes_s": parameter_bytes / a["bandwidth_bytes_per_s"],
             "border_bytes_s": border_bytes / a["bandwidth_bytes_per_s"],
             "latency_s": per_replica * len(layers) * (trips["actor_s"] + a["network_latency_s"])
                          + 2 * (trips["task_s"] + a["network_latency_s"])}
    total = sum(terms.values())
    return {"cores": cores, "machines": machines, "replica_machines": split, "replicas": replicas,
            "bytes_per_machine": parameter_bytes + border_bytes,
            "border_bytes_per_frame_per_machine": border_per_frame, **terms, "total_s": total,
            "evaluations_in_paper_time": PAPER["days"] * 86400 / total}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 3
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((64, *SMALL_LAYER.input_shape)).astype(np.float32)
    V = initial_weights(SMALL_LAYER, (0, SMALL_LAYER.grid[0]), 0)
    compute = portion_compute(frames, V, (4, 8, 16, 32), args.repeats)
    with get_client(n_workers=2, dashboard_address="127.0.0.1:0") as client:
        costs = cluster_costs(client, 10 * args.repeats)
        check = model_check(client, frames, V, compute, costs, 8, args.repeats)
    layers = network_layers()
    rows = [project(cores, layers, compute, costs) for cores in SCALES]

    print(f"measured: one-layer objective on portions of {compute['portion_frames']} frames "
          f"({compute['connections']:,} connections): "
          + ", ".join(f"{s * 1e3:.1f}" for s in compute["portion_s"])
          + f" ms -> {compute['intercept_s'] * 1e3:.2f} ms per portion + "
          f"{compute['seconds_per_connection_frame'] * 1e9:.3f} ns per connection-frame "
          f"= {compute['flop_per_s'] / 1e9:.2f} GFLOP/s per core "
          f"({FLOP_PER_CONNECTION_FRAME} FLOP per connection-frame)")
    trips = costs["round_trip_s"]
    print(f"measured: round trip {trips['task_s'] * 1e3:.2f} ms (task), {trips['actor_s'] * 1e3:.2f} ms "
          f"(actor call); coordination {costs['coordination_s_per_task'] * 1e3:.2f} ms per task; "
          f"loopback {costs['loopback_bytes_per_s'] / 1e9:.2f} GB/s")
    print(f"model check on this machine ({check['portions']} portions of {check['portion_frames']} "
          f"frames on 2 workers, {check['bytes']:,} B, of which the workers served "
          f"{check['workers_served_bytes']:,.0f} B): predicted {check['predicted_s']:.3f} s ("
          + ", ".join(f"{name[:-2]} {value:.3f}" for name, value in check["predicted"].items())
          + f"), measured {check['measured_s']:.3f} s (x{check['measured_over_predicted']:.2f})")
    connections = sum(layer.n_connections for layer in layers)
    print("assumed: " + ", ".join(f"{name} {value}" for name, value in ASSUMPTIONS.items())
          + f"; the network: {connections:.3e} connections, "
          f"{sum(layer.n_parameters for layer in layers):.3e} parameters (encoding and decoding)")
    print(f"\none evaluation = {PAPER['frames']:.0e} frames of {PAPER['frame_side']}x"
          f"{PAPER['frame_side']}, objective and gradient, all {len(layers)} layers")
    header = (f"{'cores':>7} {'machines':>8} {'split':>5} {'replicas':>8} {'compute s':>10} "
              f"{'coord s':>8} {'params s':>9} {'borders s':>10} {'latency s':>10} {'total s':>9} "
              f"{'GB/machine':>11} {'evals in 3 days':>16}")
    print(header)
    for row in rows:
        print(f"{row['cores']:>7,} {row['machines']:>8.2f} {row['replica_machines']:>5.1f} "
              f"{row['replicas']:>8.2f} {row['compute_s']:>10,.0f} {row['coordination_s']:>8,.0f} "
              f"{row['parameter_bytes_s']:>9,.1f} {row['border_bytes_s']:>10,.0f} "
              f"{row['latency_s']:>10,.0f} {row['total_s']:>9,.0f} "
              f"{row['bytes_per_machine'] / 1e9:>11,.0f} {row['evaluations_in_paper_time']:>16,.2f}")
    print(f"{'paper':>7} {PAPER['cores'] // ASSUMPTIONS['cores_per_machine']:>8,} "
          f"{'':>5} {'':>8} {'':>10} {'':>8} {'':>9} {'':>10} {'':>10} "
          f"{PAPER['days'] * 86400:>9,} {'':>11}  {PAPER['cores']:,} cores x {PAPER['days']} days "
          f"(asynchronous SGD, passes not stated)")
    values = {"measured": {"compute": compute, "cluster": costs, "model_check": check},
              "assumptions": {**ASSUMPTIONS,
                              "flop_per_connection_frame": FLOP_PER_CONNECTION_FRAME},
              "network_connections": connections, "paper": PAPER,
              "projection": {str(row["cores"]): row for row in rows}}
    record("scale_out", values, peer="the paper's 16,000 cores x 3 days (Le et al., ICML 2012)",
           notes="a model: measured inputs at small scale, assumed network; see the docstring")
    return values


if __name__ == "__main__":
    main()

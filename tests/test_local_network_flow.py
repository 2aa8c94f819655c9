"""The local_network flow end to end through Prefect (test server), on tiny data."""
import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from flows.local_network import PLAN, local_network
from flows.registry import load_flow
from stage_replay import assert_stages_replay
from terafeat.locally_connected.network import load_network

TINY = dict(images=("grass", "brick", "coffee"), frame_size=24, n_frames=48, n_layers=2,
            fields=(6, 3), strides=(2, 1), maps=(3, 2), pool=2, steps=6, batch_size=4,
            partitions=2, n_top=4, n_nonfaces_per_face=1.0, stimulus_iterations=5)


@pytest.fixture(scope="module")
def tiny_run(prefect_server, tmp_path_factory):
    return local_network(output_root=str(tmp_path_factory.mktemp("reports")), cache_root=None,
                         **TINY)


def test_flow_trains_tiles_scores_units_and_reports(tiny_run):
    results = tiny_run
    run = Path(results["run_dir"])
    for name in ("index.html", "results.json", "network.npz", "no_face_network.npz",
                 "frames.npy", "responses.npy", "objective1.npy", "objective2.npy",
                 "no_face_objective1.npy", "filters.png", "objective.png", "top_stimuli.png",
                 "invariance.png", "optimal_stimulus.png", "responses.png"):
        assert (run / name).stat().st_size > 0, name
    saved = json.loads((run / "results.json").read_text())
    layers = load_network(run / "network.npz")
    assert [g.output_shape for g, _ in layers] == [(9, 9, 3), (6, 6, 2)]
    training = saved["training"]
    assert training["n_connections"] == sum(g.n_connections for g, _ in layers) == \
        10 * 10 * 3 * 36 + 7 * 7 * 2 * 27
    assert [row["border_bytes_per_step"] > 0 for row in training["layers"]] == [True, True]
    assert all(row["frames_per_second"] > 0 for row in training["layers"])
    for i, row in enumerate(training["layers"]):  # every stage's objective fell over training
        assert row["final_objective"] < row["first_objective"]
        objective = np.load(run / f"objective{i + 1}.npy")
        assert objective[-3:].mean() < objective[:3].mean()
    # the control: the same frames minus the faces, the same budget, other weights
    frames = saved["frames"]
    assert frames["distractors"] == "bundled crops" and frames["n_faces"] == 24
    assert saved["no_face_training"]["n_frames"] == 48 - 24
    assert len(np.load(run / "no_face_objective1.npy")) == TINY["steps"]
    no_face = load_network(run / "no_face_network.npz")
    assert not np.allclose(no_face[0][1], layers[0][1])
    units = saved["units"]
    # outputs of stage 2: 6x6 locations x 2 maps; 50 + 50 faces, 50 + 50 crops
    assert units["kind"] == "output" and units["n_units"] == 6 * 6 * 2
    assert np.load(run / "responses.npy").shape == (200, 72)
    assert units["n_held_out"] == 100 and units["n_held_out_faces"] == 50
    verdict = units["verdict"]
    assert [row["network"] for row in verdict["rows"]] == [
        "trained", "no faces", "untrained", "random unit", "linear ceiling"]
    assert verdict["face_neuron"] is None and verdict["verdict"].startswith("needs seeds")
    assert verdict["rows"][0]["mean"] == units["best_unit_accuracy"]
    assert verdict["rows"][1]["mean"] == units["controls"]["no faces"]["best_unit_accuracy"]
    assert verdict["margins"][0] == pytest.approx(
        units["best_unit_accuracy"] - units["controls"]["no faces"]["best_unit_accuracy"])
    assert units["margin"] == pytest.approx(units["best_unit_accuracy"] - units[
        "random_unit_accuracy"] - 2 * units["random_unit_std"])
    # a unit built from labels beats the best learnt one at this size
    assert units["template_unit_accuracy"] > units["best_unit_accuracy"]
    assert 0 <= units["best_unit"] < 72
    assert set(units["curves"]) == {"translation", "scale", "rotation"}
    mean_face = np.load(run / "mean_held_out_face.npy")
    for name, key in (("optimal_stimulus", "stimulus_face_correlation"),
                      ("no_face_optimal_stimulus", "no_face_stimulus_face_correlation")):
        stimulus = np.load(run / f"{name}.npy")
        assert stimulus.shape == (24, 24) and np.linalg.norm(stimulus) == pytest.approx(1.0)
        assert units[key] == pytest.approx(np.corrcoef(stimulus.ravel(), mean_face.ravel())[0, 1],
                                           abs=1e-5)
    page = (run / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 6 and "random unit" in page
    assert "Verdict: needs seeds" in page and "no faces" in page
    assert f"{training['n_connections']:,}" in page
    assert results["headline"][0]["connections"] == training["n_connections"]
    assert results["headline"][0]["verdict"] == verdict["verdict"]
    assert load_flow("local_network") == (local_network, PLAN)


def test_every_stage_replays_to_the_same_outputs(tiny_run, tmp_path):
    replayed = assert_stages_replay(PLAN, Path(tiny_run["run_dir"]), tmp_path)
    assert replayed == ["sample-face-frames", "train-local-network", "train-no-face-network",
                        "score-local-units"]
    assert set(tiny_run["timings"]) == {*replayed, "write-local-network-report"}


def test_flow_on_dask_with_replicas(prefect_server, tmp_path):
    results = local_network(output_root=str(tmp_path), backend="dask", replicas=2,
                            cache_root=None, **dict(TINY, n_layers=1))
    row = results["training"]["layers"][0]
    assert row["parameter_bytes_per_step"] > 0 and row["measured_bytes_per_step"] > 0
    assert row["final_objective"] < row["first_objective"]
    assert results["training"]["n_shards"] == 4
    assert set(results["peak_memory"]) == {"flow", "training", "no_face_training"}  # workers
    assert results["peak_memory"]["training"] > 0


def test_parameters_that_cannot_build_the_network_are_refused():
    with pytest.raises(ValidationError, match="layer 2 .input 9x9x3.: receptive field 12"):
        PLAN.model(**dict(TINY, fields=(6, 12)))
    with pytest.raises(ValidationError, match="partitions must be between 1 and the 7 rows"):
        PLAN.model(**dict(TINY, partitions=8))
    with pytest.raises(ValidationError, match="fields has 2 entries for 3 layers"):
        PLAN.model(**dict(TINY, n_layers=3))
    with pytest.raises(ValidationError, match="solver: local_network trains by Downpour SGD"):
        PLAN.model(solver="lbfgs")
    with pytest.raises(ValidationError):
        PLAN.model(lam=0.1)  # the pooled-sparsity weight is sparsity_weight

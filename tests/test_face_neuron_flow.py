"""The face_neuron flow end to end through Prefect (test server), on tiny data,
and the "Why RICA?" comparison's pieces."""
import json
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import write_video

from flows.face_neuron import PLAN, face_neuron
from flows.registry import load_flow
from stage_replay import assert_stages_replay
from terafeat.analysis.why_rica import check_table, measured_checks, why_rica
from terafeat.atomic_files import save_json

TINY = dict(n_frames=600, frame_size=12, face_fraction=0.1, n_components=30, n_features=24,
            group_size=2, n_layers=2, layer2_features=12, layer2_group_size=2, max_iter=10,
            n_top=4, images=("camera", "grass", "coffee"), frames_per_video=3)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    result = why_rica(n_patches=1000, max_iter=10, n_trajectories=200, n_folds=2,
                      plan=(("ISA", 1), ("RICA", 1)), progress=lambda message: None)
    return result, save_json(tmp_path_factory.mktemp("bench") / "why_rica.json", result)


@pytest.fixture(scope="module")
def tiny_run(prefect_server, tmp_path_factory, comparison):
    data = tmp_path_factory.mktemp("data")
    (data / "clips").mkdir()
    write_video(data / "clips" / "square.avi", n_frames=40, height=48, width=64)
    root = tmp_path_factory.mktemp("reports")
    return face_neuron(output_root=str(root), data_root=str(data), cache_root=None,
                       comparison_results=str(comparison[1]), **TINY), root


def test_flow_scores_every_unit_and_writes_the_report(tiny_run):
    results, root = tiny_run
    run = Path(results["run_dir"])
    assert run.parent == root / "face_neuron"
    for name in ("index.html", "results.json", "network.npz", "control_network.npz",
                 "top_stimuli.png", "optimal_stimulus.png", "invariance.png",
                 "unit_accuracy.png", "filters.png", "responses.npy", "frames.npy"):
        assert (run / name).stat().st_size > 0, name
    saved = json.loads((run / "results.json").read_text())
    assert len(saved["training"]["iterations"]) == 2  # two layers
    assert all(1 <= n <= TINY["max_iter"] for n in saved["training"]["iterations"])
    assert saved["frames"]["n_frames"] == 600 and saved["frames"]["n_faces"] == 60
    assert saved["frames"]["n_video_frames"] == 2  # 40 frames at 20 fps, one a second
    scores = saved["scores"]
    responses = np.load(run / "responses.npy")
    assert responses.shape == (150, 6)  # 50 faces + 100 non-faces; 12 / 2 top-layer units
    assert len(scores["unit_accuracy"]) == 6
    assert scores["in_sample_best"] == pytest.approx(max(scores["unit_accuracy"]))
    assert scores["majority_accuracy"] <= min(scores["unit_accuracy"]) + 1e-9
    # the best unit (chosen on one half) beats the random-unit baseline on the other by its
    # threshold-free score (at this scale, 6 units, not by held-out accuracy)
    assert scores["best_unit_auc"] > scores["random_unit_auc"]
    for layer in (1, 2):  # every layer's objective fell over training
        objective = np.load(run / f"layer{layer}-objective.npy")
        assert objective[-1] < objective[0]
    # the top stimuli are the images that drive the best unit most, in order
    top = np.load(run / "top_stimuli.npy")
    images = np.load(run / "detection_images.npy")
    best = responses[:, scores["best_unit"]]
    np.testing.assert_array_equal(top, images[np.argsort(-best, kind="stable")[:4]])
    stimulus = np.load(run / "optimal_stimulus.npy")
    assert stimulus.shape == (12, 12) and np.linalg.norm(stimulus) == pytest.approx(1.0)
    assert saved["unit"]["optimal_response"] > 0
    curves = saved["unit"]["curves"]
    assert set(curves) == {"translation", "scale", "rotation"}
    untransformed = curves["translation"]["values"].index(0.0)
    assert curves["translation"]["relative_response"][untransformed] == pytest.approx(1.0, rel=1e-4)
    assert saved["control_training"]["n_frames"] == 540
    assert [row["network"] for row in results["headline"]] == [
        "trained with faces mixed in", "control: no faces in training"]
    page = (run / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    assert "Why RICA? (measured)" in page and "RICA (64)" in page and "✓" in page
    assert "<th>method</th><th>simple units</th>" in page  # display order, not sorted keys
    assert f"{scores['best_unit_accuracy']:.4g}" in page
    assert results["report"] == str((run / "index.html").resolve())


def test_every_stage_replays_to_the_same_outputs(tiny_run, tmp_path):
    results, _ = tiny_run
    replayed = assert_stages_replay(PLAN, Path(results["run_dir"]), tmp_path)
    assert replayed == [
        "sample-face-frames", "whiten-face-layer-1", "train-rica-layer-1", "whiten-face-layer-2",
        "train-rica-layer-2", "build-face-network", "score-face-units", "inspect-face-unit",
        "whiten-control-layer-1", "train-control-rica-layer-1", "whiten-control-layer-2",
        "train-control-rica-layer-2", "build-control-network", "score-control-units", "why-rica"]
    assert set(results["timings"]) == {*replayed, "write-face-neuron-report"}


def test_parameters_are_validated_and_the_flow_is_registered():
    assert load_flow("face_neuron") == (face_neuron, PLAN)
    assert PLAN.model().n_layers == 1 and PLAN.model().dtype == "float64"
    with pytest.raises(ValueError, match="group_size"):
        PLAN.model(n_features=25, group_size=2)
    with pytest.raises(ValueError, match="n_components"):
        PLAN.model(frame_size=8, n_components=100)
    with pytest.raises(ValueError, match="solver 'downpour' needs backend='dask'"):
        PLAN.model(solver="downpour")
    for bad in ({"face_fraction": 0.9}, {"n_layers": 3}, {"unknown": 1}):
        with pytest.raises(ValueError):
            PLAN.model(**bad)


def test_comparison_rows_hold_the_measurements(comparison):
    result, _ = comparison
    rows = {row["method"]: row for row in result["rows"]}
    assert set(rows) == {"ISA (64)", "RICA (64)"}
    for row in rows.values():
        assert row["train seconds"] > 0 and 0.5 <= row["faces accuracy"] <= 1.0
        assert row["output units"] == 16  # groups of 4
        for key in ("output invariance translation", "output invariance rotation"):
            assert 0 <= row[key] <= 100  # at most 1 / firing rate
    table = check_table(result)
    assert [row["talk: fast"] for row in table] == ["✗", "✓"]


def test_measured_checks_follow_the_stated_rules():
    def row(name, family, k, seconds, invariance):
        return {"method": name, "family": family, "simple units": k, "train seconds": seconds,
                "output invariance translation": invariance,
                "output invariance rotation": invariance}

    rows = [row("RICA", "RICA", 64, 1.0, 30), row("TICA", "TICA", 64, 2.5, 40),
            row("SC", "sparse coding", 64, 1.9, 10), row("SC4", "sparse coding", 256, 3.0, 20)]
    checks = {check["method"]: check for check in measured_checks(rows)}
    assert [checks[name]["fast"] for name in ("RICA", "TICA", "SC", "SC4")] == [
        True, False, True, None]  # SC4: no RICA at 256 to compare with
    assert [checks[name]["invariant"] for name in ("RICA", "TICA", "SC", "SC4")] == [
        True, True, False, False]

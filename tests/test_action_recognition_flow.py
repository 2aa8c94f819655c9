"""The action_recognition flow end to end through Prefect, on tiny real videos.

Two kinds of motion, encoded with OpenCV: a square moving right
(video_fixtures.write_video) and one moving down, in a Weizmann-like
``<class>/v_<class>_gGG_cCC.avi`` layout, plus a truncated clip that the
flow must skip and report.
"""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from stage_replay import assert_stages_replay
from video_fixtures import FOURCC_BY_SUFFIX, SQUARE, truncated_copy, write_video

from flows.action_recognition import PLAN, action_recognition
from flows.cli import main
from flows.registry import load_flow

N_GROUPS, N_FRAMES, SIDE = 4, 20, 32
TINY = dict(layout="ucf", block_size=8, block_frames=6, stride=2, n_blocks=1000,
            n_components1=32, n_features1=32, n_components2=24, n_features2=24, group_size=2,
            max_iter=15, vocabulary_size=16)


def write_falling_square(path, texture_seed: int):
    """A white square moving down one pixel per frame on a seeded texture (MJPG AVI)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC_BY_SUFFIX[".avi"]), 20.0,
                             (SIDE, SIDE))
    background = np.random.default_rng(texture_seed).integers(0, 60, (SIDE, SIDE, 3), np.uint8)
    for t in range(N_FRAMES):
        frame = background.copy()
        frame[t:t + SQUARE, 12:12 + SQUARE] = 255
        writer.write(frame)
    writer.release()


@pytest.fixture(scope="module")
def action_run(prefect_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("moving-squares")
    for name in ("right", "down"):
        (root / name).mkdir()
    for group in range(1, N_GROUPS + 1):
        write_video(root / "right" / f"v_right_g{group:02d}_c01.avi", N_FRAMES, SIDE, SIDE,
                    texture_seed=group)
        write_falling_square(root / "down" / f"v_down_g{group:02d}_c01.avi", texture_seed=group)
    long_clip = write_video(root / "long.avi", 60, 64, 64, texture_seed=0)
    truncated_copy(long_clip, root / "right" / "v_right_g05_c01.avi", 0.5)
    long_clip.unlink()
    reports, cache = tmp_path_factory.mktemp("reports"), tmp_path_factory.mktemp("cache")
    params = dict(data_root=str(root), output_root=str(reports), cache_root=str(cache), **TINY)
    return action_recognition(**params), reports, params


#: The stages that go through the stage cache.
CACHED = ("scan-videos", "sample-blocks", "whiten-layer1", "train-rica-layer1", "convolve-layer1",
          "whiten-layer2", "train-rica-layer2", "extract-descriptors", "build-vocabulary",
          "motion-energy", "transformed-test")
#: Every stage of a two-layer run, in order.
STAGES = ("scan-videos", "fit-blocks", "sample-blocks", "whiten-layer1", "train-rica-layer1",
          "convolve-layer1", "whiten-layer2", "train-rica-layer2", "extract-descriptors",
          "build-vocabulary", "histograms", "classify", "motion-energy", "classify-motion-energy",
          "transformed-test")


def test_rerun_hits_every_expensive_stage_and_a_downstream_change_recomputes_only_downstream(
        action_run, tmp_path):
    first, _, params = action_run
    assert first["cache"] == dict.fromkeys(CACHED, "computed")
    again = dict(params, output_root=str(tmp_path))
    second = action_recognition(**again)
    assert second["cache"] == dict.fromkeys(CACHED, "cache")
    assert second["training_layer2"]["seconds"] == first["training_layer2"]["seconds"]
    assert second["features"]["shards"][0].startswith(second["run_dir"])
    assert second["headline"] == first["headline"]
    assert "<td>cache</td>" in Path(second["report"]).read_text()
    # the descriptors' overlap: the layers and the motion-energy peer stay cached
    third = action_recognition(**dict(again, overlap=0.25))
    assert third["cache"] == {**dict.fromkeys(CACHED, "cache"),
                              "extract-descriptors": "computed", "build-vocabulary": "computed",
                              "transformed-test": "computed"}
    assert third["features"]["n_descriptors"] != first["features"]["n_descriptors"]


def test_flow_classifies_the_clips_and_skips_the_truncated_one(action_run):
    results, reports, _ = action_run
    [run] = list((reports / "action_recognition").iterdir())
    saved = json.loads((run / "results.json").read_text())
    assert saved["n_clips"] == 2 * N_GROUPS
    [skipped] = saved["skipped"]
    assert skipped["path"].endswith("v_right_g05_c01.avi") and "truncated" in skipped["problem"]
    learned, peer = saved["classification"], saved["motion_energy_classification"]
    assert learned["protocol"] == peer["protocol"] == "groups"
    assert len(learned["fold_accuracy"]) == N_GROUPS and learned["classifier"] == "chi2"
    # chance is 0.5: a coin gets 6 of the 8 clips right with probability 37/256
    assert learned["accuracy"] >= 0.75 and peer["accuracy"] >= 0.75
    assert np.sum(learned["confusion_matrix"]) == 2 * N_GROUPS
    assert saved["sizes"]["layer1_block"] == [6, 8, 8]
    assert saved["sizes"]["layer2_block"] == [8, 10, 10]
    assert saved["sizes"]["vocabulary"] == 16
    shards = sorted((run / "descriptors").glob("*.npy"))
    assert len(shards) == 2 * N_GROUPS
    assert np.load(shards[0]).shape[1] == 2 * TINY["n_features2"] // TINY["group_size"]
    assert np.load(run / "histograms.npy").sum(axis=1) == pytest.approx(np.ones(2 * N_GROUPS))
    assert np.load(run / "layer1-W.npy").shape == (32, 32)
    assert np.load(run / "layer2-W.npy").shape == (24, 24)
    assert saved["model"]["layer2"]["W"] == str(run / "layer2-W.npy")
    # results.json is written inside the report stage, before its own timing
    assert set(saved["timings"]) == set(STAGES)
    for layer in ("training_layer1", "training_layer2"):
        assert saved[layer]["final_objective"] < saved[layer]["initial_objective"], layer
    page = (run / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "v_right_g05_c01.avi" in page
    assert "motion energy" in page and results["report"] == str((run / "index.html").resolve())
    assert "<td>classify-motion-energy</td>" in page  # the timing table renders as a table
    # the headline beside the paper's (Le et al. 2011: KTH 93.9%) and the environment
    assert "<td>Le et al. 2011</td>" in page.replace("<th>", "<td>").replace("</th>", "</td>")
    assert "<td>0.939</td>" in page and "<td>usable cores</td>" in page


def test_transformed_test_scores_changed_held_out_clips_with_the_clean_classifiers(action_run):
    from tasks.classification import protocol_inputs
    from tasks.features import load_model
    from terafeat.classification.protocols import evaluate_protocol, make_classifier
    from terafeat.encoding.pooled_layer import bag_of_words
    from terafeat.media.camera import KINDS, camera_change
    from terafeat.media.video import read_clip

    results, _, params = action_run
    test = results["transformed_test"]
    assert test["kinds"] == list(KINDS) and test["strengths"] == [0.5, 1.0]
    assert [(row["kind"], row["strength"]) for row in test["conditions"]] == [
        (kind, strength) for kind in KINDS for strength in (0.5, 1.0)]
    # as filmed, the same folds and classifiers as the flow's own classification
    for name, key in (("learned", "classification"),
                      ("motion energy", "motion_energy_classification")):
        assert test["clean"][name]["fold_accuracy"] == results[key]["fold_accuracy"]
        assert test["clean"][name]["accuracy"] == results[key]["accuracy"]
    # one condition recomputed from the files: the seeded change of each clip, described
    # with the trained model, counted into the vocabulary, scored on the clean classifier
    run = Path(results["run_dir"])
    clips = json.loads(Path(results["clips"]).read_text())["clips"]
    stacked, centroids = load_model(results["model"]), np.load(results["vocabulary"])
    changed = np.stack([bag_of_words(stacked.clip_descriptors(camera_change(
        "translation", 1.0, np.random.default_rng([params.get("seed", 0), i])).apply(
            read_clip(clip["path"])), 0.5), centroids) for i, clip in enumerate(clips)])
    saved = np.load(run / "transformed" / "translation-1.npy")
    np.testing.assert_allclose(saved, changed, atol=1e-12)
    assert not np.allclose(saved, np.load(results["histograms"]))  # the clips did change
    inputs = protocol_inputs("ucf", clips)
    expected = evaluate_protocol(np.load(results["histograms"]), inputs["labels"], "groups",
                                 make_classifier("chi2", 100.0), inputs["groups"],
                                 test_features=changed)
    [row] = [row for row in test["conditions"] if row["kind"] == "translation"
             and row["strength"] == 1.0]
    assert row["learned"]["fold_accuracy"] == expected["fold_accuracy"]
    for first, second in (("learned", "motion energy"), ("learned", "PCA blocks")):
        gap = row[f"{first} - {second}"]
        assert gap["difference"] == pytest.approx(row[first]["accuracy"]
                                                  - row[second]["accuracy"])
        per_fold = np.subtract(row[first]["fold_accuracy"], row[second]["fold_accuracy"])
        assert gap["fold_std"] == pytest.approx(np.std(per_fold))
    # the non-learned peer: layer 1's PCA of the same blocks, its own vocabulary of the
    # same size, the same folds; as filmed it scores the clips too
    pca = test["clean"]["PCA blocks"]
    assert len(pca["fold_accuracy"]) == N_GROUPS and pca["accuracy"] >= 0.75
    from tasks.features import pca_blocks_model
    from tasks.whitening import load_whitener
    frames = read_clip(clips[0]["path"])
    first = pca_blocks_model(results["model"]).clip_descriptors(frames, 0.5)[0]
    whitener = load_whitener(results["model"]["layer1"]["whitener"])
    block = frames[:TINY["block_frames"], :TINY["block_size"], :TINY["block_size"]]
    np.testing.assert_allclose(first, np.sqrt(TINY.get("eps", 1e-2) + whitener.transform(
        block.reshape(1, -1)) ** 2)[0], rtol=1e-4)
    # the report names it as our protocol, with its curves and one row per condition
    page = Path(results["report"]).read_text()
    assert "Transformed test (our protocol, not a paper&#x27;s)" in page
    assert page.count("<td>translation</td>") == 2 and "<td>as filmed</td>" in page
    assert "transformed.png" in page


def test_parameters_are_validated_and_registered():
    with pytest.raises(ValueError, match="group_size"):
        PLAN.model(n_features1=301, group_size=2)
    for bad in ({"n_layers": 3}, {"n_layers": 0}, {"layout": "youtube"}, {"dtype": "float16"},
                {"solver": "sgd"}, {"test_strengths": (0.5, 1.5)}, {"test_strengths": (0,)},
                {"test_changes": ("shear",)}, {"test_changes": ()}):
        with pytest.raises(ValueError):
            PLAN.model(**bad)
    assert PLAN.model().dtype == "float32" and PLAN.model().n_layers == 2
    assert load_flow("action_recognition") == (action_recognition, PLAN)
    assert tuple(stage.name for stage in PLAN.stages) == STAGES


def test_cli_knows_the_flow(capsys):
    assert main(["params", "action_recognition", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["block_size"]["default"] == 16 and rows["vocabulary_size"]["default"] == 3000
    assert rows["n_layers"]["bounds"] == {"minimum": 1, "maximum": 2}
    assert list(rows)[-7:] == ["seed", "dtype", "output_root", "cache_root", "backend",
                               "dask_address", "solver"]
    assert main(["run", "action_recognition", "--set", "n_layers=3"]) == 2


def test_one_layer_runs_skip_the_second_layer(action_run, tmp_path):
    _, _, params = action_run
    one = action_recognition(**dict(params, output_root=str(tmp_path), n_layers=1,
                                    transformed_test=False))
    assert one["training_layer2"] is None and one["model"]["layer2"] is None
    assert "layer2_block" not in one["sizes"]
    assert one["transformed_test"] is None
    skipped = {"convolve-layer1", "whiten-layer2", "train-rica-layer2", "transformed-test"}
    assert list(one["timings"]) == [name for name in STAGES if name not in skipped] + [
        "write-action-report"]  # in the order they ran
    assert "Transformed test" not in Path(one["report"]).read_text()
    descriptors = np.load(one["features"]["shards"][0])
    assert descriptors.shape[1] == TINY["n_features1"] // TINY["group_size"]


def test_every_stage_replays_to_the_same_outputs(action_run, tmp_path):
    results, _, _ = action_run
    assert tuple(assert_stages_replay(PLAN, Path(results["run_dir"]), tmp_path)) == STAGES

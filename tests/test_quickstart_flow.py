"""The quickstart flow end to end through Prefect (test server), and the CLI's edges."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flows.cli import main
from flows.quickstart import PLAN, quickstart
from stage_replay import assert_stages_replay

SMALL = dict(n_patches=3000, n_features=64, max_iter=15, group_size=4, n_folds=3,
             images=("camera", "grass", "brick"))


@pytest.fixture(scope="module")
def small_run(prefect_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    return quickstart(output_root=str(root), cache_root=None, **SMALL), root


def test_rerun_hits_the_cache_and_a_downstream_change_recomputes_only_downstream(
        prefect_server, tmp_path):
    params = dict(SMALL, output_root=str(tmp_path / "reports"), cache_root=str(tmp_path / "cache"))
    first = quickstart(**params)
    second = quickstart(**params)
    assert second["run_dir"] != first["run_dir"]
    stages = ("sample-patches", "whiten", "train-rica", "evaluate-faces", "score-invariance")
    assert first["cache"] == dict.fromkeys(stages, "computed")
    assert second["cache"] == dict.fromkeys(stages, "cache")
    page = Path(second["report"]).read_text()
    assert "<td>cache</td>" in page and "from the stage cache" in page
    # cached summaries come back as stored: the same measured seconds prove no recompute
    assert second["training"]["seconds"] == first["training"]["seconds"]
    assert second["evaluation"] == first["evaluation"]
    assert second["training"]["W"].startswith(second["run_dir"])
    np.testing.assert_array_equal(np.load(second["training"]["W"]), np.load(first["training"]["W"]))
    assert second["timings"]["train-rica"] < first["timings"]["train-rica"]
    # n_folds only changes the evaluation: training is a hit, evaluation recomputed
    third = quickstart(**dict(params, n_folds=2))
    assert third["cache"] == {**dict.fromkeys(stages, "cache"), "evaluate-faces": "computed"}
    assert third["training"]["seconds"] == first["training"]["seconds"]
    assert third["evaluation"]["seconds"] != first["evaluation"]["seconds"]
    assert len(third["evaluation"]["accuracy"]["RICA pooled"]["folds"]) == 2
    # an upstream change (the seed of the patches) misses everywhere downstream
    fourth = quickstart(**dict(params, seed=1))
    assert fourth["training"]["seconds"] != first["training"]["seconds"]
    entries = {stage.name: len(list(stage.iterdir())) for stage in (tmp_path / "cache").iterdir()}
    assert entries == {"sample-patches": 2, "whiten": 2, "train-rica": 2, "evaluate-faces": 3,
                       "score-invariance": 2}


def test_report_files_exist_and_hold_the_numbers(small_run):
    results, root = small_run
    run_dirs = list((root / "quickstart").iterdir())
    assert len(run_dirs) == 1
    run = run_dirs[0]
    for name in ("index.html", "results.json", "filters.png", "objective.png", "accuracy.png",
                 "invariance.png", "W.npy", "objective.npy", "whitener.npz", "patches.npy", "whitened.npy"):
        assert (run / name).stat().st_size > 0, name
    saved = json.loads((run / "results.json").read_text())
    accuracy = saved["evaluation"]["accuracy"]
    assert set(accuracy) == {"raw pixels", "PCA", "RICA pooled", "RICA simple"}
    for scores in accuracy.values():
        assert 0.5 <= scores["mean"] <= 1.0 and len(scores["folds"]) == 3
    assert accuracy["RICA pooled"]["n_features"] == accuracy["PCA"]["n_features"] == 64
    assert saved["parameters"]["n_features"] == 64
    W = np.load(run / "W.npy")
    assert W.shape == (64, 64) and W.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), 1.0, rtol=1e-4)
    objective = np.load(run / "objective.npy")
    assert len(objective) == saved["training"]["n_iter"] + 1 and objective[-1] < objective[0]
    assert set(saved["timings"]) >= {"sample-patches", "whiten", "train-rica", "evaluate-faces"}
    page = (run / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "<td>train-rica</td>" in page and "<td>n_features</td>" in page  # tables, not dicts
    import numpy  # the environment table: versions and cores
    assert f"<td>numpy</td><td>{numpy.__version__}</td>" in page and "<td>cores</td>" in page
    assert saved["environment"]["numpy"] == numpy.__version__
    assert f"{accuracy['RICA pooled']['mean']:.4g}" in page
    assert results["report"] == str((run / "index.html").resolve())


def test_dask_backend_trains_the_same_layer_and_a_finished_fit_is_never_trained_again(
        small_run, tmp_path):
    local, _ = small_run
    params = dict(SMALL, output_root=str(tmp_path / "reports"), backend="dask",
                  cache_root=str(tmp_path / "cache"))
    results = quickstart(**params)
    run = Path(results["run_dir"])
    assert list((run / "shards").glob("*.npy"))
    assert not list(tmp_path.rglob("*checkpoint*"))  # a finished fit keeps no checkpoint
    assert results["training"]["n_iter"] == local["training"]["n_iter"]
    assert results["training"]["final_objective"] == pytest.approx(
        local["training"]["final_objective"], rel=1e-3)
    assert results["evaluation"]["accuracy"].keys() == local["evaluation"]["accuracy"].keys()
    assert results["training"]["resumed_from"] == 0
    # peak memory per process: the flow's, and the largest of the Dask workers that trained
    assert set(local["peak_memory"]) == {"flow"}
    assert set(results["peak_memory"]) == {"flow", "training"}
    assert results["peak_memory"]["training"] == results["training"]["peak_rss"] > 0
    # re-run: a cache hit with the same W, not more training
    again = quickstart(**params)
    assert again["cache"]["train-rica"] == "cache" and again["training"] == {
        **results["training"], "W": again["training"]["W"], "objective": again["training"]["objective"]}
    np.testing.assert_array_equal(np.load(again["training"]["W"]), np.load(results["training"]["W"]))
    # a longer budget is another fit, from the start (not the shorter one's end)
    longer = quickstart(**dict(params, max_iter=SMALL["max_iter"] + 5))
    assert longer["cache"]["train-rica"] == "computed"
    assert longer["training"]["resumed_from"] == 0
    assert longer["training"]["n_iter"] == SMALL["max_iter"] + 5


def test_an_interrupted_dask_fit_resumes_and_says_so(prefect_server, tmp_path, monkeypatch):
    import tasks.training
    params = dict(SMALL, max_iter=25, output_root=str(tmp_path / "reports"), backend="dask",
                  cache_root=str(tmp_path / "cache"))
    progress = tasks.training.report_progress

    def interrupt_at_12(label, iteration, total):
        if iteration == 12:
            raise KeyboardInterrupt
        progress(label, iteration, total)

    monkeypatch.setattr(tasks.training, "report_progress", interrupt_at_12)
    with pytest.raises(KeyboardInterrupt):
        quickstart(**params)
    assert len(list((tmp_path / "cache").rglob("checkpoint.npz"))) == 1  # iteration 10's
    monkeypatch.setattr(tasks.training, "report_progress", progress)
    resumed = quickstart(**params)
    assert resumed["cache"]["train-rica"] == "computed"
    assert resumed["training"]["resumed_from"] == 10 and resumed["training"]["n_iter"] == 25
    assert "resumed from the checkpoint of an interrupted run at iteration 10" in \
        Path(resumed["report"]).read_text()
    assert not list(tmp_path.rglob("*checkpoint*"))


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="group_size"):
        PLAN.model(n_features=10, group_size=4)
    with pytest.raises(ValueError):
        PLAN.model(patch_size=2)
    with pytest.raises(ValueError):
        PLAN.model(unknown=1)
    with pytest.raises(ValueError):
        PLAN.model(backend="spark")


def test_cli_rejects_bad_parameters_and_prints_defaults(capsys):
    assert main(["run", "quickstart", "--set", "max_iter=0"]) == 2
    assert "max_iter" in capsys.readouterr().err
    assert main(["params", "quickstart", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["n_features"]["default"] == 256 and rows["patch_size"]["default"] == 8
    assert rows["patch_size"]["bounds"] == {"minimum": 4, "maximum": 16}
    assert rows["lam"]["description"] == "weight of RICA's reconstruction term"
    assert main(["params", "quickstart"]) == 0
    assert "max_iter: int = 400  [minimum 1]\n    L-BFGS iterations" in capsys.readouterr().out


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "flows.cli", "params", "quickstart", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {row["name"]: row["default"] for row in json.loads(done.stdout)}["lam"] == 10.0


def test_results_and_progress_are_published_as_artifacts(small_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

    results, _ = small_run
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])))
    # other runs of this module publish under the same keys: find this run's
    summary = next(a.data for a in artifacts
                   if a.key == "quickstart-report" and results["report"] in a.data)
    assert "RICA pooled" in summary
    run_id = next(a.flow_run_id for a in artifacts
                  if a.key == "quickstart-report" and a.data == summary)
    table = next(a for a in artifacts if a.key == "quickstart-results" and a.flow_run_id == run_id)
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    accuracy = results["evaluation"]["accuracy"]
    assert {row["features"]: row["accuracy"] for row in rows} == {
        name: round(scores["mean"], 4) for name, scores in accuracy.items()}
    assert any(float(artifact.data) == 100.0 for artifact in progress)


def test_runs_lists_finished_and_unfinished_runs_with_headlines(small_run, capsys):
    results, root = small_run
    (root / "quickstart" / "20000101-000000-killed").mkdir()  # no results.json: never finished
    assert main(["runs", "--output-root", str(root), "--flow", "quickstart"]) == 0
    out = capsys.readouterr().out
    finished = Path(results["run_dir"]).name
    assert f"{finished}  (finished)" in out and "20000101-000000-killed  (unfinished)" in out
    pooled = next(row for row in results["headline"] if row["features"] == "RICA pooled")
    assert f"accuracy={pooled['accuracy']:.4g}" in out
    assert out.index(finished) < out.index("20000101-000000-killed")  # newest first


def test_every_stage_replays_to_the_same_outputs(small_run, tmp_path):
    results, _ = small_run
    replayed = assert_stages_replay(PLAN, Path(results["run_dir"]), tmp_path)
    assert replayed == ["sample-patches", "whiten", "train-rica", "evaluate-faces",
                        "score-invariance"]


def test_invariance_check_tells_the_trained_units_apart_in_the_predicted_order(small_run):
    results, _ = small_run
    invariance = results["invariance"]
    scores = invariance["scores"]
    assert set(scores) == {"PCA", "RICA simple", "RICA pooled"}
    for transformation in ("translation", "rotation"):
        values = [scores[name][transformation] for name in scores]
        assert len(set(values)) == 3, (transformation, values)  # the check is not flat
    # Goodfellow et al.: pooled units are more invariant to translation than simple ones
    assert scores["RICA pooled"]["translation"] > 1.2 * scores["RICA simple"]["translation"]
    assert invariance["order"]["translation"]["pooled > simple"]
    # the report shows the scores and says, per transformation, which predicted relations hold
    page = Path(results["report"]).read_text()
    for name, by_transformation in scores.items():
        assert f"<td>{name}</td><td>{by_transformation['translation']:.4g}</td>" in page
    for transformation, order in invariance["order"].items():
        marks = "".join(f"<td>{'yes' if holds else 'no'}</td>" for holds in order.values())
        assert f"<td>{transformation}</td>{marks}</tr>" in page
    failed = [(t, claim) for t, order in invariance["order"].items()
              for claim, holds in order.items() if not holds]
    assert ("does NOT hold for" in page) == bool(failed)
    for transformation, claim in failed:
        assert f"{claim} under {transformation}".replace(">", "&gt;") in page

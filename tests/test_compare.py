"""``terafeat report --compare RUN RUN``: two runs side by side in one HTML page."""
import re

import numpy as np

from flows.cli import main
from reporting.toolkit import environment, save_image
from terafeat.atomic_files import save_json


def _run(folder, accuracy: float, max_iter: int, cached: str):
    folder.mkdir(parents=True)
    save_image(folder / "filters.png", np.random.default_rng(max_iter).random((8, 8)))
    save_json(folder / "results.json", {
        "flow": "quickstart",
        "headline": [{"features": "RICA pooled", "accuracy": accuracy, "dimensions": 64},
                     {"features": "PCA", "accuracy": 0.7, "dimensions": 64}],
        "parameters": {"max_iter": max_iter, "seed": 0},
        "timings": {"train RICA": 2.5 if cached == "computed" else 0.01},
        "cache": {"train RICA": cached}, "environment": environment()})
    return folder


def test_two_runs_side_by_side(tmp_path, capsys):
    a = _run(tmp_path / "reports" / "quickstart" / "20260101-000000-first", 0.8, 100, "computed")
    b = _run(tmp_path / "reports" / "quickstart" / "20260102-000000-second", 0.85, 200, "cache")
    assert main(["report", "--compare", str(a), str(b), "--output-root",
                 str(tmp_path / "reports")]) == 0
    page_path = capsys.readouterr().out.split("report: ")[1].strip()
    assert "/compare/" in page_path
    page = open(page_path).read()
    cells = re.findall(r"<t[dh]>(.*?)</t[dh]>", page)
    assert "20260101-000000-first" in cells and "20260102-000000-second" in cells
    # the headline: RICA pooled 0.8 in A, 0.85 in B, +0.05
    row = cells.index("RICA pooled")
    assert cells[row:row + 5] == ["RICA pooled", "accuracy", "0.8", "0.85", "0.05"]
    # parameters that differ come first and are marked
    first = cells.index("max_iter")
    assert cells[first:first + 4] == ["max_iter", "100", "200", "yes"]
    assert first < cells.index("seed")
    stage = cells.index("train RICA")
    assert cells[stage:stage + 5] == ["train RICA", "2.5", "computed", "0.01", "cache"]
    # self-contained: both figures inline, side by side; nothing loaded from elsewhere
    assert page.count("data:image/png;base64,") == 2 and "display:flex" in page
    assert not re.search(r"src=['\"](?!data:)", page)
    # the comparison folder is not a run of a flow
    assert main(["runs", "--output-root", str(tmp_path / "reports")]) == 0
    assert "compare" not in capsys.readouterr().out


def test_a_folder_without_results_is_a_one_line_error(tmp_path, capsys):
    a = _run(tmp_path / "a", 0.8, 100, "computed")
    assert main(["report", "--compare", str(a), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no results.json here" in err

"""A generated report in headless Chromium: the figures render (non-blank image
regions in a screenshot) and the page logs nothing to the console.

Needs Debian's ``chromium`` (or chromium-browser / google-chrome) on PATH;
``.ci/run`` installs it where it can.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reporting.pages.quickstart import quickstart_report
from tasks.evaluation import ANGLES, FIRING_RATE, SHIFTS, TOP_UNITS, predicted_order
from reporting.toolkit import save_image, write_html_report

BROWSER = next((path for name in ("chromium", "chromium-browser", "google-chrome")
                if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium, chromium-browser or google-chrome on PATH "
                            "(Debian: apt-get install chromium; .ci/run does it when root)")
WIDTH = 1000
# Where the images are: appended after the page's own content, so nothing moves.
PROBE = ("<script>addEventListener('load', () => { const out = document.createElement('pre');"
         " out.id = 'terafeat-probe'; out.textContent = JSON.stringify({height: "
         "document.documentElement.scrollHeight, images: [...document.images].map(i => {"
         " const r = i.getBoundingClientRect(); return {x: r.left + scrollX, y: r.top + scrollY,"
         " w: r.width, h: r.height, natural: i.naturalWidth}; })});"
         " document.body.appendChild(out); });</script>")


def _chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
             "--force-device-scale-factor=1"]
    return subprocess.run([BROWSER, *flags, *args], capture_output=True, text=True, timeout=120)


def render(page: Path, tmp_path) -> tuple[np.ndarray, list[dict], list[str]]:
    """(screenshot (h, w, 3) uint8, image boxes {x, y, w, h, natural}, console lines) of a page."""
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="terafeat-probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the probe did not run: {dom.stderr[-2000:]}"
    layout = json.loads(found[1])
    shot = tmp_path / f"{page.stem}.png"
    done = _chromium(tmp_path, f"--window-size={WIDTH},{int(layout['height']) + 50}",
                     "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", page.as_uri())
    assert shot.is_file(), f"no screenshot: {done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return np.asarray(Image.open(shot).convert("RGB")), layout["images"], console


def blank_figures(screenshot: np.ndarray, boxes: list[dict]) -> list[int]:
    """Indices of the image boxes that did not decode or show (nearly) one colour."""
    blank = []
    for i, box in enumerate(boxes):
        x, y = int(round(box["x"])), int(round(box["y"]))
        region = screenshot[y:y + int(box["h"]), x:x + int(box["w"])].astype(float)
        if box["natural"] == 0 or region.size == 0 or region.std() < 5:
            blank.append(i)
    return blank


def test_a_generated_report_renders_its_figures_without_console_errors(tmp_path):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(16, 64))
    accuracy = {name: {"mean": mean, "std": 0.02, "folds": [mean] * 3, "n_features": 16}
                for name, mean in (("raw pixels", 0.7), ("RICA pooled", 0.85))}
    results = {"parameters": {"n_features": 16}, "timings": {"train RICA": 1.5},
               "training": {"n_iter": 20, "seconds": 1.5, "initial_objective": 10.0,
                            "final_objective": 2.0, "optimizer_message": "converged"},
               "evaluation": {"accuracy": accuracy}}
    scores = {name: {"translation": 1.5 + i, "rotation": 1.2 + i}
              for i, name in enumerate(("PCA", "RICA simple", "RICA pooled"))}
    results["invariance"] = {"scores": scores, "order": predicted_order(scores),
                             "settings": {"shifts": list(SHIFTS), "angles": list(ANGLES),
                                          "firing_rate": FIRING_RATE, "top_units": TOP_UNITS,
                                          "n_trajectories": 100}}
    page = quickstart_report(tmp_path / "run", results, W, np.geomspace(10, 2, 21), (8, 8))
    screenshot, boxes, console = render(page, tmp_path)
    assert len(boxes) == 4  # filters, objective, accuracy, invariance
    assert blank_figures(screenshot, boxes) == []
    assert console == []


def test_the_check_sees_blank_figures_and_console_errors(tmp_path):
    white = save_image(tmp_path / "white.png", np.ones((16, 16)))
    page = write_html_report(tmp_path / "bad.html", "bad", [("figure", [white])])
    page.write_text(page.read_text().replace("</body>", "<script>noSuchFunction()</script></body>"))
    screenshot, boxes, console = render(page, tmp_path)
    assert blank_figures(screenshot, boxes) == [0]
    assert len(console) == 1 and "noSuchFunction" in console[0]

"""Progress bars: long stages report progress; the CLI draws it only on a terminal."""
import io
import os
import pty

import numpy as np

from flows.progress import LOG_INTERVAL, ProgressLine, ProgressLog, logged_progress, terminal_progress
from tasks.logs import progress_listener, report_progress
from tasks.training import train_rica_layer
from terafeat.atomic_files import save_array


def test_training_reports_every_iteration(tmp_path):
    X = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    calls = []
    with progress_listener(lambda stage, done, total: calls.append((stage, done, total))):
        result = train_rica_layer.fn(str(save_array(tmp_path / "whitened.npy", X)),
                                     str(tmp_path), 8, 1.0, 1e-2, 6, "float32", 0)
    assert {stage for stage, _, _ in calls} == {"train RICA"}
    assert [done for _, done, _ in calls] == list(range(1, result["n_iter"] + 1))
    assert all(total == 6 for _, _, total in calls)
    train_rica_layer.fn(str(tmp_path / "whitened.npy"), str(tmp_path), 8, 1.0, 1e-2, 2,
                        "float32", 0)
    assert len(calls) == result["n_iter"]  # no listener outside the block


def test_the_line_redraws_in_place_and_ends_each_stage():
    stream = io.StringIO()
    line = ProgressLine(stream, interval=0.0)
    for done in range(0, 5):
        line("train RICA", done, 4)
    line("features (test)", 1, None)
    text = stream.getvalue()
    assert text.count("\r") == 6 and "[" + "#" * 30 + "] 4/4\n" in text
    assert text.endswith("features (test)".ljust(24) + " 1")


def test_drawn_only_when_stdout_is_a_terminal():
    stream = io.StringIO()
    with terminal_progress(stdout=io.StringIO(), stream=stream) as line:
        report_progress("train RICA", 3, 10)
    assert line is None and stream.getvalue() == ""
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w") as terminal, \
                terminal_progress(stdout=terminal, stream=stream) as line:
            report_progress("train RICA", 3, 10)  # left unfinished: closed with a newline
        assert line is not None and stream.getvalue().startswith("\rtrain RICA")
        assert stream.getvalue().endswith("3/10\n")
    finally:
        os.close(leader)


def test_off_a_terminal_long_stages_log_at_a_steady_rate():
    now, records = [0.0], []
    log = ProgressLog(interval=30.0, log=records.append, clock=lambda: now[0])
    for done in range(0, 101):  # a stage of 100 steps, one step every 0.7 s
        now[0] = 0.7 * done
        log("features (train)", done, 100)
    assert records == ["features (train): 43/100 (43%) after 30 s, about 40 s left",
                       "features (train): 86/100 (86%) after 60 s, about 10 s left",
                       "features (train): 100/100 (100%) after 70 s"]
    records.clear()
    for done in range(1, 11):  # a short stage logs nothing, even at its end
        now[0] += 0.5
        log("train RICA", done, 10)
    now[0] += 31
    log("descriptors (clips)", 3, None)  # first report: the stage starts here
    now[0] += 31
    log("descriptors (clips)", 5, None)
    assert records == ["descriptors (clips): 5 after 31 s"]


def test_logged_only_when_stdout_is_not_a_terminal():
    with logged_progress(stdout=io.StringIO()) as log:
        assert isinstance(log, ProgressLog) and log.interval == LOG_INTERVAL
        now = [0.0]
        log.clock = lambda: now[0]
        records = []
        log.log = records.append
        report_progress("train RICA", 1, 10)
        now[0] = LOG_INTERVAL
        report_progress("train RICA", 2, 10)
    report_progress("train RICA", 3, 10)  # outside the block: no listener
    assert records == [f"train RICA: 2/10 (20%) after {LOG_INTERVAL:.0f} s, about "
                       f"{4 * LOG_INTERVAL:.0f} s left"]
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w") as terminal, logged_progress(stdout=terminal) as log:
            assert log is None  # the terminal draws its line instead
    finally:
        os.close(leader)

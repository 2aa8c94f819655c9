"""Progress bars on the terminal for long stages (training iterations, feature
batches, downloads): one line on stderr, redrawn in place, only when stdout is
a terminal (never in logs, pipes or CI)."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from tasks.logs import progress_listener

WIDTH = 30  # characters of the bar


class ProgressLine:
    """Draws ``stage [#####     ] done/total`` on ``stream``, at most every ``interval``
    seconds, always at the end; a new stage starts a new line."""

    def __init__(self, stream=None, interval: float = 0.1):
        self.stream = stream or sys.stderr
        self.interval = interval
        self.stage: str | None = None
        self.drawn = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now, finished = time.monotonic(), total is not None and done >= total
        if stage != self.stage:
            if self.stage is not None:
                self.stream.write("\n")
            self.stage, self.drawn = stage, 0.0
        elif not finished and now - self.drawn < self.interval:
            return
        self.drawn = now
        if total:
            filled = round(WIDTH * min(done, total) / total)
            line = f"{stage:<24} [{'#' * filled}{' ' * (WIDTH - filled)}] {done}/{total}"
        else:
            line = f"{stage:<24} {done}"
        self.stream.write(f"\r{line}")
        if finished:
            self.stream.write("\n")
            self.stage = None
        self.stream.flush()


@contextmanager
def terminal_progress(stdout=None, stream=None):
    """Within the block, long stages draw a ``ProgressLine`` on ``stream`` (stderr) when
    ``stdout`` (sys.stdout) is a terminal; yields the line, or None when not drawing."""
    stdout = stdout or sys.stdout
    if not stdout.isatty():
        yield None
        return
    line = ProgressLine(stream)
    try:
        with progress_listener(line):
            yield line
    finally:
        if line.stage is not None:  # a stage that stopped early (e.g. converged)
            line.stream.write("\n")
            line.stream.flush()

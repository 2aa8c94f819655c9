"""Progress of long stages (training iterations, feature batches, clips, downloads):
on a terminal, one line on stderr redrawn in place; elsewhere (logs, pipes, CI), a
log record every ``LOG_INTERVAL`` seconds of a stage and at its end."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import contextmanager

from tasks.logs import progress_listener, stage_logger

WIDTH = 30  # characters of the bar
#: Seconds between two progress records of a stage when stdout is not a terminal.
LOG_INTERVAL = 30.0


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


class ProgressLog:
    """Logs ``stage: done/total (p%) after s, about s left`` through ``log`` (default the
    stage's logger) once ``interval`` seconds of a stage have passed since its first
    report or its last record, and at its end when it logged before; short stages log
    nothing.  ``clock``: seconds, monotonic."""

    def __init__(self, interval: float = LOG_INTERVAL, log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.log = log or (lambda message: stage_logger().info("%s", message))
        self.clock = clock
        #: stage -> [started, last record, done so far, records]
        self.stages: dict[str, list] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = self.clock()
        state = self.stages.get(stage)
        if state is None or done < state[2]:  # a new stage, or the same name again
            state = self.stages[stage] = [now, now, done, 0]
        state[2] = done
        finished = total is not None and done >= total
        if (finished and state[3]) or (not finished and now - state[1] >= self.interval):
            elapsed = now - state[0]
            if total:
                left = (f", about {elapsed / done * (total - done):.0f} s left"
                        if done and not finished else "")
                self.log(f"{stage}: {done}/{total} ({100 * min(done, total) / total:.0f}%) "
                         f"after {elapsed:.0f} s{left}")
            else:
                self.log(f"{stage}: {done} after {elapsed:.0f} s")
            state[1], state[3] = now, state[3] + 1
        if finished:
            del self.stages[stage]


@contextmanager
def logged_progress(stdout=None, interval: float | None = None):
    """Within the block, long stages log their progress (a :class:`ProgressLog`, every
    ``interval`` seconds, default ``LOG_INTERVAL``) when ``stdout`` (sys.stdout) is not a
    terminal; yields the log, or None on a terminal (where ``terminal_progress`` draws a
    line instead)."""
    stdout = stdout or sys.stdout
    if stdout.isatty():
        yield None
        return
    log = ProgressLog(LOG_INTERVAL if interval is None else interval)
    with progress_listener(log):
        yield log
